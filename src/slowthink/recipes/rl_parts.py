"""What one RL run trains with (``RLParts``), built from its config."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slowthink.data.problem_sets import ProblemSet, load_problem_sets
from slowthink.data.sampler import PromptSampler
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.rl_engine import build_generator, ranks_load_empty
from slowthink.rewards.reward import RewardModel
from slowthink.rollout.generator import Generator
from slowthink.training.distributed import DistInfo
from slowthink.training.experience import SelectionSettings
from slowthink.training.lora import AdapterOff, is_lora
from slowthink.training.optim import build_optimizer, build_scheduler, continue_optimizer
from slowthink.training.run_setup import load_trainer_policy


@dataclass
class RLParts:
    """What one RL run trains with, built from its config (``build_parts``)."""

    model: Any  # the policy, as loaded (the checkpoint's weights go in and out of it)
    tokenizer: Any
    reference: Any  # a frozen copy for the KL penalty / monitor, or None; sharded like the policy once wrapped
    train_set: ProblemSet
    heldout_set: ProblemSet
    generator: Generator
    reward_model: RewardModel
    settings: SelectionSettings
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LambdaLR
    sampler: PromptSampler
    wrapped: Any = None  # the policy wrapped for training (DDP, FSDP2 shards), once ``wrap_model`` ran


def build_parts(config: RLConfig, info: DistInfo = DistInfo()) -> RLParts:
    """Model, reference, problems, rollout engine, reward, selection, optimizer, schedule, sampler."""
    # With its memory plan; on the CPU under FSDP (sharding moves it to the GPU a layer at a time).
    model, tokenizer = load_trainer_model(config, info)
    reference = build_reference(model) if config.needs_reference else None
    train_set, heldout_set = load_problem_sets(config.data, tokenizer, config.run.seed)
    generator = build_generator(config, model, tokenizer)
    reward_model = RewardModel(config.reward)
    settings = selection_settings(config)
    # Exactly epochs x prompts_per_step / prompts_per_update optimizer steps per RL step.
    updates_per_step = config.update.epochs * (config.rollout.prompts_per_step // config.prompts_per_update)
    optimizer = build_optimizer(model, config.optim)
    if config.model.optimizer_state:
        continue_optimizer(optimizer, Path(config.model.optimizer_state), config.optim.lr)
    scheduler = build_scheduler(optimizer, config.optim, total_steps=config.train.steps * updates_per_step)
    sampler = PromptSampler(len(train_set.problems), seed=config.run.seed)
    return RLParts(
        model=model,
        tokenizer=tokenizer,
        reference=reference,
        train_set=train_set,
        heldout_set=heldout_set,
        generator=generator,
        reward_model=reward_model,
        settings=settings,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
    )


def selection_settings(config: RLConfig) -> SelectionSettings:
    """Which rows train and how their advantages are formed (``algorithm.*``, training/experience.py)."""
    algorithm = config.algorithm
    return SelectionSettings(
        algorithm.advantage,
        algorithm.drop_uniform_groups,
        algorithm.question_selection,
        algorithm.response_selection,
        algorithm.overlength_masking,
    )


def load_trainer_model(config: RLConfig, info: DistInfo) -> tuple[Any, Any]:
    """(model, tokenizer) with the memory plan; under FSDP on several ranks, on the CPU on
    rank 0 and empty (``meta``) on the others unless stale rollouts need every rank's full copy
    (``rl_engine.ranks_load_empty``, ``run_setup.load_trainer_policy``)."""
    return load_trainer_policy(config.model, config.distributed, info, ranks_load_empty(config, info))


def build_reference(model: Any) -> Any:
    """The KL reference: a frozen copy of the initial policy, or with LoRA the policy itself
    with its adapter off (the untouched base weights: no second copy, training/lora.py)."""
    if is_lora(model):
        return AdapterOff(model)
    return copy.deepcopy(model).eval().requires_grad_(False)
