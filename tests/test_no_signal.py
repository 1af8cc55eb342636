"""NoSignalWatch: one warning when the first steps have no correct rollout, never otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slowthink.no_signal import NoSignalWatch

sys.path.insert(0, str(Path(__file__).parent / "recipes"))
from rl_helpers import tiny_rl_config  # noqa: E402


def feed(watch, accuracies):
    return [watch.update({"accuracy": a}) for a in accuracies]


def test_warns_once_after_the_first_zero_steps(capsys):
    watch = NoSignalWatch("tiny", steps=3)
    assert feed(watch, [0.0, 0.0, 0.0, 0.0, 0.0]) == [False, False, True, False, False]
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and "model.path=tiny" in err and len(err.strip().splitlines()) == 1


def test_no_warning_once_a_rollout_is_correct(capsys):
    assert not any(feed(NoSignalWatch("m", steps=3), [0.0, 0.1, 0.0, 0.0, 0.0, 0.0]))
    assert capsys.readouterr().err == ""


def test_a_resumed_run_is_not_watched():
    assert not any(feed(NoSignalWatch.for_run(10, "m"), [0.0] * 10))


@pytest.mark.slow
def test_rl_from_the_random_tiny_model_warns(tmp_path, capsys):
    from slowthink.recipes.rl import run_rl

    run_rl(tiny_rl_config(tmp_path, "train.steps=5", "train.save_every=5"))
    err = capsys.readouterr().err
    assert "no rollout was correct in the first 5 steps" in err, err
