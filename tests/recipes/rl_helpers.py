"""Small RL configs on the tiny model for recipe tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from slowthink.config import load_config
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.rl_parts import RLParts, selection_settings

TINY_RL = [
    "run.torch_threads=1",
    "run.progress=false",
    "reward.checker=exact",
    "data.tiny_train_size=64",
    "data.tiny_eval_size=8",
    "rollout.prompts_per_step=4",
    "rollout.rollouts_per_prompt=4",
    "rollout.max_length_schedule=[[0,12]]",
    "train.steps=2",
    "train.eval_every=0",
    "train.eval_max_problems=4",
    "train.save_every=1",
    "optim.lr=0.001",
    "update.micro_batch_size=16",
    # A random tiny model is never right. The length reward (RRL, section 4.2.1) still varies
    # when stop strings end some responses early, so advantages are non-zero and updates move.
    "algorithm.drop_uniform_groups=false",
    "reward.weights={correctness: 1.0, length: 1.0}",
    "rollout.stop=['0','1','2','3','4','5']",
]


def tiny_rl_config(out: Path, *overrides: str) -> RLConfig:
    return load_config(RLConfig, None, [f"run.output_dir={out}", *TINY_RL, *overrides])


def update_parts(config: RLConfig, model: Any, reference: Any = None, wrapped: Any = None) -> RLParts:
    """The parts ``prepare_batch`` reads: ``model`` (``wrapped``: as it trains, default itself),
    the reference, the config's selection settings and pad id 0 (the tiny tokenizer's). The
    run's other parts (problems, engine, reward, optimizer, sampler) are not built: None."""
    return RLParts(
        model=model,
        tokenizer=SimpleNamespace(pad_token_id=0),
        reference=reference,
        train_set=None,
        heldout_set=None,
        generator=None,
        reward_model=None,
        settings=selection_settings(config),
        optimizer=None,
        scheduler=None,
        sampler=None,
        wrapped=model if wrapped is None else wrapped,
    )
