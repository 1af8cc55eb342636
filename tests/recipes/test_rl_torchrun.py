"""``torchrun --nproc-per-node 2 -m slowthink.cli rl``: two gloo ranks train one model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import TINY_RL  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_rank_rl_run_completes_with_one_metrics_stream(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--nproc-per-node",
        "2",
        "--master-port",
        str(_free_port()),
        "-m",
        "slowthink.cli",
        "rl",
        f"run.output_dir={tmp_path / 'run'}",
        *TINY_RL,
        "train.steps=2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranks 2" in result.stdout
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]  # written by rank 0 only
    assert latest_checkpoint(tmp_path / "run").name == "step_000002"
