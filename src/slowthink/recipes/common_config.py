"""Config pieces shared by the recipes: the run, the model and the problem source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slowthink.config import StrictConfig

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
