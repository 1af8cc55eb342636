"""The length-hacking detector inside a real RL run: its fields land in metrics.jsonl."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slowthink.recipes.rl import run_rl
from slowthink.tracking import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config  # noqa: E402


@pytest.mark.slow
def test_rl_logs_the_detector_once_a_window_is_full(tmp_path):
    run = run_rl(
        tiny_rl_config(tmp_path / "run", "train.steps=10", "train.save_every=10", "rollout.prompts_per_step=2", "rollout.rollouts_per_prompt=2")
    )
    rows = read_metrics(run / "metrics.jsonl")
    assert [("length_hacking" in r) for r in rows] == [False] * 9 + [True]
    assert rows[-1]["length_hacking"] in (0.0, 1.0) and "length_hacking/length_rise" in rows[-1]
