"""What every training recipe (rl, sft) does around its loop, written once.

- ``run_training``: the entry of a recipe: the process group (torchrun), the claimed run
  directory, the recipe's loop in it, then the process group shut down;
- ``seed_everything``: torch threads for this machine, then Python's, NumPy's and torch's seeds;
- ``load_policy``: the model and tokenizer from a ``ModelConfig``, with its memory plan
  (chunked log-probs, gradient checkpointing, autocast) and its LoRA adapters when asked for;
  ``load_trainer_policy``: the same as a training rank loads it (under FSDP: on the CPU, and
  empty on ranks other than 0);
- ``run_outputs``: the metric tracker (rank 0 only; resumed runs drop rows after the
  checkpoint) and the live progress display.

Claiming, locking and resuming the run directory is ``training/run_dir.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from slowthink.tracking import StepProgress, build_tracker
from slowthink.training.distributed import DistInfo, init_distributed, load_device, shutdown
from slowthink.training.run_dir import RunStart, claim_run_dir

Config = TypeVar("Config")


def run_training(
    config: Config,
    resume: bool,
    train: Callable[[Config, RunStart, DistInfo], Path],
    check: Callable[[Config, DistInfo], None] | None = None,
) -> Path:
    """Start the process group (torchrun's, or none), ``check`` the config against it before
    anything is loaded or written, claim the run directory (training/run_dir.py) and
    ``train`` in it; returns the run directory."""
    info = init_distributed(config.distributed)
    if check is not None:
        check(config, info)
    with claim_run_dir(config, resume, info) as start:
        run_dir = train(config, start, info)
    shutdown(info)  # the process group this run started (torchrun), after every rank is done
    return run_dir


def seed_everything(run: Any) -> int:
    """Set torch's threads (``run.torch_threads``, 0 = decide from the cores) and seed Python, NumPy and torch; returns the threads.

    NumPy's global generator is seeded as transformers' ``set_seed`` does: nothing of slowthink
    draws from it, but a user's reward function or data code may, and checkpoints save its state.
    """
    from slowthink.models.modeling import set_torch_threads

    threads = set_torch_threads(run.torch_threads or None)
    random.seed(run.seed)
    np.random.seed(run.seed)
    torch.manual_seed(run.seed)
    return threads


def load_policy(model_config: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of ``model.path`` in ``model.dtype`` on ``model.device``, with the memory plan applied."""
    from slowthink.models.modeling import load_model_and_tokenizer, set_memory_plan

    model, tokenizer = load_model_and_tokenizer(model_config.path, model_config.dtype, model_config.device)
    set_memory_plan(model, model_config.memory_plan)  # chunked log-probs, checkpointing, autocast
    if model_config.lora.enabled:
        from slowthink.training.lora import apply_lora

        model = apply_lora(model, model_config.lora)  # only the adapters train (training/lora.py)
    return model, tokenizer


def load_trainer_policy(model_config: Any, distributed: Any, info: DistInfo, ranks_load_empty: bool) -> tuple[Any, Any]:
    """(model, tokenizer) as a training rank loads them: ``load_policy`` on ``load_device`` (the
    CPU under FSDP on several ranks, where ``fully_shard`` moves each layer to the GPU as it
    shards it). With ``ranks_load_empty`` (FSDP on several ranks), ranks other than 0 load the
    architecture only (``meta``) and ``shard_model`` fills their shards from rank 0: a node holds
    one full copy of the weights in host memory, not one per rank."""
    if not ranks_load_empty or info.rank == 0:
        return load_policy(model_config.model_copy(update={"device": load_device(model_config.device, info, distributed)}))
    from slowthink.models.modeling import load_tokenizer, set_memory_plan
    from slowthink.training.fsdp import empty_model

    return set_memory_plan(empty_model(model_config.path, model_config.dtype), model_config.memory_plan), load_tokenizer(model_config.path)


def run_outputs(config: Any, name: str, start_step: int, keys: tuple[str, ...], info: DistInfo) -> tuple[Any, StepProgress]:
    """(tracker or None off rank 0, progress) for a run of ``config.train.steps`` starting at ``start_step``."""
    run_dir = Path(config.run.output_dir)
    tracker = None
    if info.is_main:
        tracker = build_tracker(config.tracking, run_dir, config.model_dump(mode="json"), resume=start_step > 0, last_step=start_step)
    progress = StepProgress(name, config.train.steps, start_step, keys, enabled=config.run.progress and info.is_main)
    return tracker, progress
