"""Config pieces shared by the recipes: the run, the model, the problem source, and the
generation backend and answer checker of ``slowthink eval`` and ``slowthink distill-tir``."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from slowthink.config import StrictConfig
from slowthink.config.fields import model_in

# The problem source config lives beside the code it configures (data/problem_sets.py).
from slowthink.data.problem_sets import ProblemSourceConfig, TinyTaskConfig  # noqa: F401  (re-exported)
from slowthink.models.modeling import MemoryPlan


class RunConfig(StrictConfig):
    output_dir: str = "runs/rl"
    """Every run writes here: config.yaml, metrics.jsonl, checkpoints/, report files."""
    seed: int = 0
    """Seed of every random draw of the run (tiny-model init, data order, sampling)."""
    torch_threads: int = 0
    """Torch intra-op threads (0 = decide from the cores; tests use 1)."""
    progress: bool = True
    """Show a live progress bar / progress lines."""
    overwrite: bool = False
    """A fresh run in a directory that already holds a run (config.yaml, metrics.jsonl,
    checkpoints) is refused; true removes the old run's files first (training/run_dir.py)."""


class LoraConfig(StrictConfig):
    """Low-rank adapters through peft (training/lora.py): only the adapters train."""

    r: int = Field(default=0, ge=0)
    """Rank of each adapter; 0 = off (every weight trains)."""
    alpha: float = Field(default=16.0, gt=0)
    """Scale of the adapter's update: alpha / r times B @ A."""
    dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on the adapters' input while training (0 = off)."""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """Names of the linear modules that get an adapter (the attention and MLP projections of Qwen2/Llama)."""

    @property
    def enabled(self) -> bool:
        return self.r > 0


class ModelConfig(StrictConfig):
    path: str = "tiny"
    """"tiny" (the embedded default), a local Hugging Face directory, or a hub name."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Stored dtype of the weights (and so of the optimizer's moments): bfloat16 halves both."""
    device: str = "cpu"
    """Torch device of the model: cpu, cuda or cuda:N."""
    logprob_chunk_size: int = Field(default=1024, ge=0)
    """Memory for long chains of thought (docs/scale.md). Tokens whose logits exist at once
    when log-probs and entropy are taken; 0 materialises all B x T x V logits."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer in the backward instead of keeping its activations."""
    autocast: Literal["none", "bfloat16", "float16"] = "none"
    """Forward under torch.autocast in this dtype, weights kept in model.dtype ("none" = off)."""
    lora: LoraConfig = LoraConfig()
    """LoRA: train low-rank adapters instead of every weight (off by default; docs/rl.md)."""

    @property
    def memory_plan(self) -> MemoryPlan:
        return MemoryPlan(self.logprob_chunk_size, self.gradient_checkpointing, self.autocast)


class RLModelConfig(ModelConfig):
    optimizer_state: str | None = None
    """A checkpoint directory (e.g. the SFT cold start's) whose AdamW moments the RL optimizer
    continues from; a fresh Adam at a high rate can collapse on its first step (docs/design.md, "The tiny demo")."""


class BackendConfig(StrictConfig):
    """What generates responses: a model in this process (hf, vllm) or an OpenAI-compatible
    server (openai: vLLM, SGLang, ``slowthink serve``). The ``backend`` section of eval and distill-tir."""

    kind: Literal["hf", "openai", "vllm"] = "hf"
    """hf (transformers in this process), openai (any OpenAI-compatible server), vllm (an in-process engine)."""
    base_url: str | None = None
    """Server URL for backend openai, e.g. http://127.0.0.1:8000/v1."""
    api_key: str | None = None
    """Bearer token for backend openai (the --api-key flag reads OPENAI_API_KEY)."""
    served_model_name: str | None = None
    """Model name on the server (backend openai; null: the first of /v1/models)."""
    concurrency: int = Field(8, ge=1)
    """Requests in flight (backend openai)."""
    timeout_s: float = Field(600.0, gt=0)
    """Per-request timeout in seconds (backend openai)."""
    max_retries: int = Field(3, ge=0)
    """Retries on connection errors and HTTP 408, 429, 500, 502-504 (backend openai)."""

    @model_validator(mode="after")
    def _check_server(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if self.kind != "openai" and (self.base_url or self.served_model_name):
            raise ValueError("base_url and served_model_name are for --backend openai; a local model is --model PATH")
        return self

    def remote(self, concurrency: int | None = None, tokenizer: Any = None) -> Any:
        """An ``OpenAIGenerator`` for the server (backend openai); the caller closes it."""
        from slowthink.rollout import factory

        requests = self.concurrency if concurrency is None else concurrency
        return factory.remote(
            self.base_url or "", self.served_model_name, self.api_key, requests, self.timeout_s, self.max_retries, tokenizer=tokenizer
        )


class CheckerConfig(StrictConfig):
    """How final answers are checked against the gold ones (rewards/checkers.py)."""

    kind: Literal["math", "exact"] = "math"
    """math (math-verify in worker processes) or exact (string match, the tiny task)."""
    workers: int = Field(2, ge=1)
    """Answer-checker worker processes."""


# The backend's flat keys of eval and distill-tir before the ``backend`` section, and where each went.
MOVED_BACKEND_KEYS = {"backend": "backend.kind"} | {
    key: f"backend.{key}" for key in ("base_url", "api_key", "served_model_name", "concurrency", "timeout_s")
}


class MovedKeysConfig(StrictConfig):
    """A command's config whose flat keys moved into sections (eval, distill-tir, score): a flat
    key in a file or an override is an error naming its new dotted key (``moved_keys``)."""

    command: ClassVar[str] = ""
    moved_keys: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            moved_keys_error(cls, data, cls.moved_keys, cls.command)
        return data


def moved_keys_error(config: type[StrictConfig], data: dict[str, Any], moved: dict[str, str], command: str) -> None:
    """Raise a ``ValueError`` naming the new dotted key of each flat key in ``data`` that
    ``command`` read before its settings went into sections (``moved``: old key -> new key).
    A key that is also a section's name (``backend``, ``data``...) is old only with a plain value."""

    def flat(key: str, value: Any) -> bool:
        section = key in config.model_fields and model_in(config.model_fields[key].annotation)[0] is not None
        return key in moved and not (section and isinstance(value, (dict, StrictConfig)))

    found = [key for key, value in data.items() if flat(key, value)]
    if found:
        where = ", ".join(f"'{key}' is now '{moved[key]}'" for key in found)
        raise ValueError(
            f"{command}'s settings are in sections now (its command-line flags are unchanged): {where}; see `slowthink config {command}`"
        )
    # A misspelt old key (temprature=0.5): the loader could only list the sections here.
    # A key close to one at the top as well (modle: model or mode?) is left to the loader's own hint.
    for key in (k for k in data if k not in config.model_fields):
        close = difflib.get_close_matches(key, moved, n=1)
        if close and not difflib.get_close_matches(key, config.model_fields, n=1):
            raise ValueError(f"unknown key '{key}' (did you mean '{moved[close[0]].split(' ')[0]}'?); see `slowthink config {command}`")
