"""Config pieces shared by the recipes: the run, the model and the problem source.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slowthink.config import StrictConfig

# The problem source config lives beside the code it configures (data/problem_sets.py).
from slowthink.data.problem_sets import ProblemSourceConfig, TinyTaskConfig  # noqa: F401  (re-exported)
from slowthink.models.modeling import MemoryPlan


class RunConfig(StrictConfig):
    # Every run writes here: config.yaml, metrics.jsonl, checkpoints/, report files.
    output_dir: str = "runs/rl"
    # Seed of every random draw of the run (tiny-model init, data order, sampling).
    seed: int = 0
    # Torch intra-op threads (0 = decide from the cores; tests use 1).
    torch_threads: int = 0
    # Show a live progress bar / progress lines.
    progress: bool = True
    # A fresh run in a directory that already holds a run (config.yaml, metrics.jsonl,
    # checkpoints) is refused; true removes the old run's files first (training/run_dir.py).
    overwrite: bool = False


class LoraConfig(StrictConfig):
    """Low-rank adapters through peft (training/lora.py): only the adapters train."""

    # Rank of each adapter; 0 = off (every weight trains).
    r: int = Field(default=0, ge=0)
    # Scale of the adapter's update: alpha / r times B @ A.
    alpha: float = Field(default=16.0, gt=0)
    # Dropout on the adapters' input while training (0 = off).
    dropout: float = Field(default=0.0, ge=0, lt=1)
    # Names of the linear modules that get an adapter (the attention and MLP projections of Qwen2/Llama).
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    @property
    def enabled(self) -> bool:
        return self.r > 0


class ModelConfig(StrictConfig):
    # "tiny" (the embedded default), a local Hugging Face directory, or a hub name.
    path: str = "tiny"
    # Stored dtype of the weights (and so of the optimizer's moments): bfloat16 halves both.
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Torch device of the model: cpu, cuda or cuda:N.
    device: str = "cpu"
    # Memory for long chains of thought (docs/scale.md). Tokens whose logits exist at once
    # when log-probs and entropy are taken; 0 materialises all B x T x V logits.
    logprob_chunk_size: int = Field(default=1024, ge=0)
    # Recompute each decoder layer in the backward instead of keeping its activations.
    gradient_checkpointing: bool = False
    # Forward under torch.autocast in this dtype, weights kept in model.dtype ("none" = off).
    autocast: Literal["none", "bfloat16", "float16"] = "none"
    # LoRA: train low-rank adapters instead of every weight (off by default; docs/rl.md).
    lora: LoraConfig = LoraConfig()

    @property
    def memory_plan(self) -> MemoryPlan:
        return MemoryPlan(self.logprob_chunk_size, self.gradient_checkpointing, self.autocast)


class RLModelConfig(ModelConfig):
    # A checkpoint directory (e.g. the SFT cold start's) whose AdamW moments the RL optimizer
    # continues from; a fresh Adam at a high rate can collapse on its first step (docs/design.md, "The tiny demo").
    optimizer_state: str | None = None
