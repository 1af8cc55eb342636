"""Optimizer and learning-rate schedule, from a small typed config; continuing another run's moments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator

from slowthink.config import ConfigError, StrictConfig
from slowthink.training.checkpoint import SHARDED_DIR, is_sharded_checkpoint, load_trainer_state


class OptimConfig(StrictConfig):
    """AdamW with linear warm-up then a constant or cosine schedule."""

    lr: float = 1e-6
    """Peak learning rate of AdamW (the paper's RL runs use 1e-6)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's (beta1, beta2)."""
    eps: float = 1e-8
    """AdamW's epsilon."""
    warmup_steps: int = 0
    """Optimizer steps of linear warm-up from 0 (a fresh Adam at a large rate can collapse on step 1)."""
    schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: constant, or cosine decay to min_lr_ratio x lr."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of ``lr`` for the cosine schedule."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (0 disables)."""

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        # A validator, not Field(ge=0): recipes' subclasses redeclare warmup_steps with their defaults.
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        return self


def build_optimizer(model: Any, config: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )


def lr_factor(step: int, config: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``lr`` at optimizer step ``step`` (0-based)."""
    if config.warmup_steps > 0 and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(total_steps - config.warmup_steps, 1)
    progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_warning(config: OptimConfig, total_steps: int) -> str | None:
    """One line when the run never leaves warm-up (``total_steps <= warmup_steps``), else None.

    The learning rate then only climbs: it reaches ``lr`` at best on the last step, and the
    cosine decay never starts, which nothing else in the log would show.
    """
    if config.warmup_steps <= 0 or total_steps > config.warmup_steps:
        return None
    peak = lr_factor(total_steps - 1, config, total_steps)
    return (
        f"WARNING: train.steps={total_steps} <= optim.warmup_steps={config.warmup_steps}: the whole run is linear "
        f"warm-up (the learning rate reaches {peak:.0%} of optim.lr on its last step and the {config.schedule} "
        "schedule never starts); lower optim.warmup_steps or raise train.steps"
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config, total_steps))


def optimizer_state_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot give ``model.optimizer_state`` its AdamW moments, or None;
    cheap (the trainer state is memory-mapped, a sharded checkpoint's index read), so it runs
    before any model loads."""
    if is_sharded_checkpoint(checkpoint):
        import torch.distributed.checkpoint as dcp

        keys = dcp.FileSystemReader(str(checkpoint / SHARDED_DIR)).read_metadata().state_dict_metadata
        return None if any(key.startswith("optimizer.state.") for key in keys) else "holds no optimizer state (its shards have no AdamW moments)"
    if not (checkpoint / "trainer_state.pt").is_file():
        return "no trainer_state.pt in it (an SFT run's checkpoints/step_NNNNNN holds one)"
    if "optimizer" not in load_trainer_state(checkpoint):
        return "holds no optimizer state (its trainer_state.pt has no 'optimizer')"
    return None


def continue_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Path, lr: float) -> None:
    """Start from another run's AdamW moments (the SFT cold start's), with this run's
    hyper-parameters: only the per-parameter state (moments, step counts) is taken; the
    learning rate, betas, eps and weight decay stay the RL config's.

    A sharded checkpoint's moments wait for the sharded model: the recipe reads them after
    ``wrap_model`` (``sharded_checkpoint.continue_sharded_optimizer``)."""
    problem = optimizer_state_problem(checkpoint)
    if problem is not None:
        raise ConfigError(f"model.optimizer_state: {checkpoint} {problem}")
    if is_sharded_checkpoint(checkpoint):
        return
    saved = load_trainer_state(checkpoint)
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(saved["optimizer"])
    for group, hyper in zip(optimizer.param_groups, own):
        group.update(hyper)
        group["lr"] = group["initial_lr"] = lr
