"""An RL run's checkpoint: the parts' weights and state out (``save``) and back in (``restore``).

A checkpoint holds the policy, the optimizer, the schedule, the sampler's position, the RNG
states, a reset reference and the engine's own weights when they differ from the trainer's
(stale rollouts), so that a resumed run continues bit for bit. The full format is written by
rank 0 (training/checkpoint.py); the sharded one by every rank (training/sharded_checkpoint.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slowthink.recipes import rl_engine
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.rl_parts import RLParts
from slowthink.training import checkpoint as ckpt
from slowthink.training.distributed import DistInfo, barrier, checkpoint_states, weights_for_checkpoint
from slowthink.training.sharded_checkpoint import ShardedWriter, load_sharded


@dataclass
class RLState:
    """What a checkpoint must hold besides the weights to continue bit-for-bit."""

    step: int = 0
    sampler: dict[str, int] = field(default_factory=dict)
    reference_reset_at: int = 0  # step of the last reference reset (0 = the initial model)


def save(parts: RLParts, state: RLState, config: RLConfig, info: DistInfo, writer: ShardedWriter | None = None) -> None:
    """Checkpoint step ``state.step``: sharded by every rank through ``writer``, else full on rank 0."""
    if writer is not None:
        # Every rank writes its own shards of the policy, its optimizer and a reset reference.
        trainer_state: dict[str, Any] = {**_run_state(state), "scheduler": parts.scheduler.state_dict(), "rng": ckpt.rng_state()}
        engine = parts.generator.weights_model
        if engine is not None and engine is not parts.model and info.is_main:
            trainer_state["generator"] = engine.state_dict()
        reference = parts.reference if state.reference_reset_at > 0 else None
        writer.save(state.step, parts.model, parts.optimizer, parts.tokenizer, trainer_state, reference)
        return
    # Full weights and optimizer state on rank 0; under FSDP every rank takes part in the gather.
    weights, optimizer_state = checkpoint_states(parts.model, parts.optimizer, info)
    reference_state = None
    if parts.reference is not None and state.reference_reset_at > 0:
        reference_state = weights_for_checkpoint(parts.reference, info)  # gathered from the shards under FSDP
    if not info.is_main:
        barrier(info)
        return
    trainer_state = {**_run_state(state), "optimizer": optimizer_state, "scheduler": parts.scheduler.state_dict(), "rng": ckpt.rng_state()}
    if reference_state is not None:
        trainer_state["reference"] = reference_state
    engine = parts.generator.weights_model
    if engine is not None and engine is not parts.model:
        trainer_state["generator"] = engine.state_dict()
    run_dir = Path(config.run.output_dir)
    ckpt.save_checkpoint(
        run_dir, state.step, parts.model, parts.tokenizer, trainer_state, keep_last=config.train.keep_checkpoints, state_dict=weights
    )
    barrier(info)


def _run_state(state: RLState) -> dict[str, Any]:
    return {"step": state.step, "sampler": state.sampler, "reference_reset_at": state.reference_reset_at}


def restore(checkpoint: Path, parts: RLParts) -> RLState:
    """Load weights and trainer state; the run continues exactly where the checkpoint was."""
    saved = ckpt.restore_training(checkpoint, parts.model, parts.optimizer, parts.scheduler, parts.sampler)
    if parts.reference is not None and "reference" in saved:
        parts.reference.load_state_dict(saved["reference"])
    engine = parts.generator.weights_model
    if engine is not None and "generator" in saved:
        engine.load_state_dict(saved["generator"])
    elif engine is None and not ckpt.is_sharded_checkpoint(checkpoint) and not any(p.is_meta for p in parts.model.parameters()):
        # A separate engine (vLLM) still holds the initial weights: give it the checkpoint's
        # (an empty model's rank gives them after the sharding, fill_engine).
        rl_engine.generator_sync(parts.generator, parts.model)
    return RLState(step=saved["step"], sampler=saved["sampler"], reference_reset_at=saved["reference_reset_at"])


def restore_shards(checkpoint: Path, parts: RLParts) -> None:
    """A sharded checkpoint's policy, optimizer and reference, read into the shards (collective)."""
    load_sharded(checkpoint, parts.model, parts.optimizer, parts.reference)
    if parts.generator.weights_model is None:
        rl_engine.generator_sync(parts.generator, parts.model)  # a separate engine (vLLM) still holds the initial weights
