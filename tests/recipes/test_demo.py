"""``slowthink demo`` end to end on a small budget: every stage runs and the report is written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_pipeline_writes_report_and_prints_the_result_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "slowthink.cli",
        "demo",
        "--seed",
        "1",
        "--out",
        str(tmp_path),
        "--sft",
        "train.steps=10",
        "--sft",
        "data.tiny_size=64",
        "--sft",
        "run.torch_threads=1",
        "--rl",
        "train.steps=2",
        "--rl",
        "rollout.prompts_per_step=4",
        "--rl",
        "rollout.rollouts_per_prompt=4",
        "--rl",
        "data.tiny_eval_size=8",
        "--rl",
        "train.eval_every=1",
        "--rl",
        "run.torch_threads=1",
        "--rl",
        "rollout.max_length_schedule=[[0,16]]",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"held-out accuracy: SFT \d+\.\d% -> RL \d+\.\d%", last), last
    run = tmp_path / "seed1"
    report = (run / "report.md").read_text()
    assert "SFT cold start" in report and "after RL" in report
    for figure in ("accuracy.png", "length.png", "completion.png"):
        assert (run / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert (run / "sft" / "metrics.jsonl").is_file() and (run / "rl" / "metrics.jsonl").is_file()
