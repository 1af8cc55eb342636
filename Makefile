# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, taken from local disk here; a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
# Parallel test workers; each gets one torch thread (see tests/conftest.py).
WORKERS ?= 2

.PHONY: install demo test bench clean sandbox-deps

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

bench: install
	$(BIN)/python bench/bench_checker.py
	$(BIN)/python bench/bench_sandbox.py

clean:
	rm -rf $(VENV) runs .pytest_cache
