"""The length-hacking detector inside a real RL run: its fields land in metrics.jsonl."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slowthink.monitors.length_hacking import HackingSettings
from slowthink.recipes.rl import run_rl
from slowthink.tracking import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config  # noqa: E402


@pytest.mark.slow
def test_rl_logs_the_detector_once_window_and_follow_steps_are_logged(tmp_path):
    span = HackingSettings().span
    run = run_rl(
        tiny_rl_config(
            tmp_path / "run", f"train.steps={span}", f"train.save_every={span}", "rollout.prompts_per_step=2", "rollout.rollouts_per_prompt=2"
        )
    )
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["step"] > 0]
    assert [("length_hacking" in r) for r in rows] == [False] * (span - 1) + [True]
    assert rows[-1]["length_hacking"] in (0.0, 1.0) and "length_hacking/length_rise" in rows[-1]
