"""Learning-rate schedule by hand: linear warm-up, then constant or cosine to a floor."""

from __future__ import annotations

import math

import pytest
import torch

from slowthink.training.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor


def test_warmup_then_constant():
    config = OptimConfig(lr=1e-3, warmup_steps=4)
    assert [lr_factor(s, config, total_steps=10) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_no_warmup_constant_is_one_from_the_first_step():
    assert lr_factor(0, OptimConfig(), 10) == 1.0


def test_cosine_after_warmup_by_hand():
    config = OptimConfig(lr=1e-3, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    total = 14  # cosine spans the 10 steps after warm-up
    expected = {
        0: 0.25,
        3: 1.0,
        4: 1.0,  # progress 0
        7: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.3)),  # = 0.81450...
        9: 0.55,  # progress 0.5: halfway between 1 and the floor 0.1
        14: 0.1,  # progress 1: the floor
        30: 0.1,  # stays at the floor after the end
    }
    for step, value in expected.items():
        assert lr_factor(step, config, total) == pytest.approx(value, abs=1e-12), step
    assert expected[7] == pytest.approx(0.814503, abs=1e-6)


def test_cosine_without_warmup_reaches_zero():
    config = OptimConfig(schedule="cosine")
    assert lr_factor(0, config, 4) == 1.0
    assert lr_factor(1, config, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(2, config, 4) == pytest.approx(0.5)
    assert lr_factor(4, config, 4) == pytest.approx(0.0, abs=1e-12)


def test_scheduler_applies_the_factor_to_each_optimizer_step():
    model = torch.nn.Linear(2, 1)
    config = OptimConfig(lr=0.2, warmup_steps=2, schedule="cosine", min_lr_ratio=0.0)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps=6)
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # Step 0 already trains (at lr / 2), never at lr 0.
    assert seen == pytest.approx(
        [0.1, 0.2, 0.2, 0.2 * 0.5 * (1 + math.cos(math.pi / 4)), 0.1, 0.2 * 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0], abs=1e-12
    )


def test_build_optimizer_uses_the_config_and_skips_frozen_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)
    config = OptimConfig(lr=3e-4, weight_decay=0.1, betas=(0.8, 0.95), eps=1e-6)
    optimizer = build_optimizer(model, config)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert group["lr"] == 3e-4 and group["weight_decay"] == 0.1 and group["betas"] == (0.8, 0.95) and group["eps"] == 1e-6
    assert len(group["params"]) == 2 and all(p.requires_grad for p in group["params"])


def test_warmup_warning_when_the_run_never_leaves_warmup():
    from slowthink.training.optim import warmup_warning

    config = OptimConfig(lr=0.1, warmup_steps=20, schedule="cosine")
    message = warmup_warning(config, total_steps=10)
    assert message is not None and "10" in message and "20" in message and "\n" not in message
    assert warmup_warning(config, total_steps=20) is not None  # at the boundary too: the cosine never starts
    assert warmup_warning(config, total_steps=21) is None
    assert warmup_warning(OptimConfig(warmup_steps=0), total_steps=1) is None
