"""NoSignalWatch: one warning when the first steps have every advantage 0, never otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from slowthink.monitors.no_signal import NoSignalWatch
from slowthink.training.experience import RowOutcomes, SelectionSettings, step_advantages

sys.path.insert(0, str(Path(__file__).parent / "recipes"))
from rl_helpers import tiny_rl_config  # noqa: E402


def feed(watch, accuracies, advantages=None):
    advantages = [0.0] * len(accuracies) if advantages is None else advantages
    return [watch.update({"accuracy": a, "advantage_abs_mean": d}) for a, d in zip(accuracies, advantages)]


def advantage_of(rewards_PG: list[list[float]], correct_PG: list[list[bool]]) -> float:
    """The step's mean |advantage| as the RL recipe computes it, from real rewards."""
    rewards = torch.tensor(rewards_PG)
    outcomes = RowOutcomes(
        rewards_PG=rewards,
        correct_PG=torch.tensor(correct_PG),
        lengths_PG=torch.full(rewards.shape, 10),
        finished_PG=torch.ones(rewards.shape, dtype=torch.bool),
        kl_PG=torch.zeros(rewards.shape),
    )
    settings = SelectionSettings("grpo", drop_uniform_groups=True, question_selection=False, response_selection=False, overlength_masking=False)
    return float(step_advantages(outcomes, settings, 0.0).abs().mean())


def test_warns_once_after_the_first_zero_steps(capsys):
    watch = NoSignalWatch("tiny", steps=3)
    assert feed(watch, [0.0, 0.0, 0.0, 0.0, 0.0]) == [False, False, True, False, False]
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and "model.path=tiny" in err and len(err.strip().splitlines()) == 1


def test_no_warning_once_a_group_has_a_signal(capsys):
    assert not any(feed(NoSignalWatch("m", steps=3), [0.0, 0.1, 0.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0, 0.0, 0.0]))
    assert capsys.readouterr().err == ""


def test_no_warning_when_a_format_reward_tells_wrong_rollouts_apart(capsys):
    # Every rollout wrong, but a format reward of 0.1 on some of them: the policy learns.
    wrong = [[False] * 4] * 2
    signal = advantage_of([[0.1, 0.0, 0.0, 0.1], [0.0, 0.0, 0.1, 0.0]], wrong)
    assert signal > 0
    assert not any(feed(NoSignalWatch("m", steps=3), [0.0] * 6, [signal] * 6))
    assert capsys.readouterr().err == ""


def test_warns_when_every_group_agrees_though_some_are_right(capsys):
    # One group all right, one all wrong: both uniform, every advantage 0.
    signal = advantage_of([[1.0] * 4, [0.0] * 4], [[True] * 4, [False] * 4])
    assert signal == 0.0
    assert feed(NoSignalWatch("m", steps=2), [0.5, 0.5], [signal, signal]) == [False, True]
    err = capsys.readouterr().err
    assert "every advantage was 0 in the first 2 steps" in err and "no rollout was correct" not in err


def test_a_resumed_run_is_not_watched():
    assert not any(feed(NoSignalWatch.for_run(10, "m"), [0.0] * 10))


@pytest.mark.slow
def test_rl_from_the_random_tiny_model_warns_on_correctness_alone(tmp_path, capsys):
    from slowthink.recipes.rl import run_rl

    run_rl(tiny_rl_config(tmp_path, "train.steps=5", "train.save_every=5", "reward.weights={correctness: 1.0}"))
    err = capsys.readouterr().err
    assert "no rollout was correct in the first 5 steps" in err, err


@pytest.mark.slow
def test_rl_from_the_random_tiny_model_with_a_length_reward_does_not_warn(tmp_path, capsys):
    # tiny_rl_config's length reward varies within groups (stop strings end some rollouts early).
    from slowthink.recipes.rl import run_rl

    run_rl(tiny_rl_config(tmp_path, "train.steps=5", "train.save_every=5"))
    assert "WARNING" not in capsys.readouterr().err
