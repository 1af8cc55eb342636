"""``slowthink eval``'s config: one section per component, as ``slowthink rl`` and ``sft`` have.

``data`` (which problems, which prompt template), ``sampling`` (greedy or sampled decoding,
paper sections 4.3 and 4.4), ``backend`` (what generates: shared with distill-tir),
``checker``, ``tools``; the model, the output folder and the report settings stay at the top.
The command-line flags set these keys (cli/evaluate.py); they were flat keys before, and a
flat key now names where it went (``MOVED_KEYS``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from slowthink.config import StrictConfig
from slowthink.data.problems import check_column_mapping
from slowthink.data.prompts import TEMPLATE_NAMES
from slowthink.eval.benchmarks import BENCHMARK_NAMES
from slowthink.eval.runner import Decoding
from slowthink.recipes.common_config import MOVED_BACKEND_KEYS, BackendConfig, CheckerConfig, MovedKeysConfig

# What greedy decoding is (section 4.3): one sample at T = 0, the full distribution.
GREEDY = {"n": 1, "temperature": 0.0, "top_p": 1.0}

# The flat keys eval read before its sections, and where each went (the flags did not change).
MOVED_KEYS = {
    "benchmarks": "data.benchmarks",
    "data": "data.file",
    "columns": "data.columns",
    "data_dir": "data.benchmark_dir",
    "limit": "data.limit",
    "template": "data.template",
    "mode": "sampling.mode",
    "n": "sampling.n",
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "max_tokens": "sampling.max_tokens",
    "seed": "sampling.seed",
    **MOVED_BACKEND_KEYS,
    "max_retries": "backend.max_retries",
    "batch_size": "backend.batch_size",
    "tensor_parallel_size": "backend.tensor_parallel_size",
    "checker": "checker.kind",
    "checker_workers": "checker.workers",
    "answer_fallback": "checker.answer_fallback",
    "tools": "tools.kind",
    "tool_preset": "tools.preset",
    "max_tool_calls": "tools.max_tool_calls",
    "tools_no_exec": "tools.execute (negated)",
}


class EvalDataConfig(StrictConfig):
    """Which problems: named benchmarks or a file of your own (one of the two), and their prompt template."""

    benchmarks: tuple[str, ...] = ()
    """Named benchmarks to evaluate (-b, repeatable); see eval/benchmarks.py."""
    file: str | None = None
    """Problems instead of benchmarks: a .jsonl/.json/.parquet/.arrow/.csv file of {id, problem, answer} rows,
    a dataset folder (DIR@SPLIT) or a Hub id OWNER/NAME[:CONFIG][@SPLIT] (docs/data.md)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Which columns of data.file hold a problem's fields, e.g. {problem: question, answer: final_answer}."""
    benchmark_dir: str | None = None
    """Folder of shared-format JSONL copies of the named benchmarks (offline use)."""
    limit: int | None = Field(None, ge=1)
    """Only the first N problems of each benchmark."""
    template: str = "chat"
    """Prompt template (slowthink.data.prompts)."""

    @model_validator(mode="after")
    def _check(self) -> EvalDataConfig:
        for name in self.benchmarks:
            if name not in BENCHMARK_NAMES:
                raise ValueError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARK_NAMES)}")
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        check_column_mapping(self.columns)
        return self


class EvalSamplingConfig(StrictConfig):
    """How responses are decoded: greedy, or n samples per problem (sections 4.3, 4.4)."""

    mode: Literal["greedy", "sampled"] = "greedy"
    """greedy: one sample at T=0, top-p 1; sampled: n samples per problem at temperature and top-p."""
    n: int = Field(8, ge=1)
    """Samples per problem in sampled mode (paper, section 4.4: 8); greedy draws 1."""
    temperature: float = Field(0.6, ge=0)
    """Sampling temperature in sampled mode (paper: 0.6); greedy is 0."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Nucleus-sampling p in sampled mode (paper: 0.95); greedy is 1."""
    max_tokens: int = Field(32768, ge=1)
    """Generated tokens per response (paper: 32768); cut to fit the model's context."""
    seed: int = 0
    """Sampling seed."""

    @model_validator(mode="before")
    @classmethod
    def _greedy_values(cls, data: Any) -> Any:
        # The defaults written on n, temperature and top_p are the sampled ones; greedy fills
        # in its own where nothing was given, so the resolved (printed) config says what runs.
        if isinstance(data, dict) and data.get("mode", "greedy") == "greedy":
            data = {**GREEDY, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> EvalSamplingConfig:
        given = {key: getattr(self, key) for key in GREEDY}
        if self.mode == "greedy" and given != GREEDY:
            wrong = ", ".join(f"{key}={value}" for key, value in given.items() if value != GREEDY[key])
            raise ValueError(f"--mode greedy draws one sample at temperature 0, top-p 1 (got {wrong}); --n/--temperature/--top-p need --mode sampled")
        return self

    def decoding(self) -> Decoding:
        return Decoding(n=self.n, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=self.seed)


class EvalBackendConfig(BackendConfig):
    """What generates: hf, vllm or an OpenAI-compatible server, and how many prompts per call."""

    batch_size: int = Field(16, ge=1)
    """Prompts per generate call of the hf / vllm backends (also the resume granularity)."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs the vllm backend shards the model over (backend vllm only)."""


class EvalCheckerConfig(CheckerConfig):
    """How final answers are checked (rewards/checkers.py)."""

    answer_fallback: bool = False
    """Also accept unboxed final answers ("the answer is X", last number): evaluation only."""


class EvalToolsConfig(StrictConfig):
    """Tool-integrated evaluation (section 4.4, docs/tools.md): code blocks run in the sandbox, their output spliced in."""

    kind: Literal["none", "python"] = "none"
    """"python": run code blocks in the sandbox and splice their output in (section 4.4)."""
    preset: Literal["default", "still3"] = "default"
    """Output format of the tool loop: "default" or "still3" (the paper's release)."""
    max_tool_calls: int | None = Field(None, ge=0)
    """Code blocks executed per response; later ones are left unrun. None: no limit (the paper's)."""
    execute: bool = True
    """false (--tools-no-exec): the paper's ablation "code written but not executed": stop at code blocks, run nothing."""

    @model_validator(mode="after")
    def _check(self) -> EvalToolsConfig:
        if self.kind == "none" and (self.preset != "default" or self.max_tool_calls is not None or not self.execute):
            raise ValueError("--tool-preset, --max-tool-calls and --tools-no-exec need --tools python")
        return self

    def settings(self) -> dict[str, Any]:
        """The tool settings a sample depends on (resume keys, written flat to run.json); all None without tools."""
        if self.kind == "none":
            return {"tools": "none", "tool_preset": None, "max_tool_calls": None, "tools_execute": None}
        return {"tools": self.kind, "tool_preset": self.preset, "max_tool_calls": self.max_tool_calls, "tools_execute": self.execute}


class EvalConfig(MovedKeysConfig):
    """Everything ``slowthink eval`` needs; the command-line flags set keys of these sections."""

    command = "eval"
    moved_keys = MOVED_KEYS

    model: str | None = None
    """"tiny" (embedded; the default for hf and vllm), a local Hugging Face directory or a hub
    name. For the openai backend it only names the tokenizer (the served model is asked
    for at /v1/models); there it has no default, see ``openai_tokenizer_name``."""
    tokenizer: str | None = None
    """The tokenizer that renders prompts (default: --model's). With --backend openai, this or
    --model must name the served model's tokenizer, unless the server serves a local path."""
    out: str = "runs/eval"
    """Output folder; rerunning with the same folder resumes."""
    pass_k: tuple[int, ...] = ()
    """pass@k values to report besides 1, 2, 4, ... and n (each k <= n)."""
    progress: bool = True
    """Progress bar on a terminal."""
    data: EvalDataConfig = EvalDataConfig()
    """Which problems (benchmarks or a file of your own) and their prompt template."""
    sampling: EvalSamplingConfig = EvalSamplingConfig()
    """Greedy (the default) or sampled decoding: n, temperature, top-p, max tokens, seed (sections 4.3, 4.4)."""
    backend: EvalBackendConfig = EvalBackendConfig()
    """What generates: hf, vllm or an OpenAI-compatible server (docs/evaluation.md)."""
    checker: EvalCheckerConfig = EvalCheckerConfig()
    """How final answers are checked: math-verify or exact match, workers, the unboxed-answer fallback."""
    tools: EvalToolsConfig = EvalToolsConfig()
    """Tool-integrated evaluation: run code blocks in the sandbox (docs/tools.md)."""

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # hf and vllm load the model itself, the embedded tiny one by default. The openai
        # backend gets no default: a wrong tokenizer would silently build wrong prompts.
        # (A flat `backend: openai` is MovedKeysConfig's error, whichever validator runs first.)
        backend = data.get("backend")
        kind = backend.kind if isinstance(backend, BaseModel) else backend.get("kind", "hf") if isinstance(backend, dict) else backend
        if data.get("model") is None and kind != "openai":
            data = {**data, "model": "tiny"}
        return data

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        if bool(self.data.benchmarks) == bool(self.data.file):
            raise ValueError("give --benchmark NAME (repeatable) or --data FILE.jsonl, not both and not neither")
        for k in self.pass_k:
            if not 1 <= k <= self.sampling.n:
                raise ValueError(f"pass_k: each k must be in 1..n = {self.sampling.n} samples per problem, got {k}")
        return self

    def decoding(self) -> Decoding:
        return self.sampling.decoding()
