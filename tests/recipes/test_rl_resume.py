"""A run killed with SIGKILL mid-step and resumed ends with the same parameters as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slowthink.recipes.rl import run_rl
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import TINY_RL, tiny_rl_config  # noqa: E402

STEPS = ["train.steps=5", "train.save_every=1", "kl.mode=fixed", "kl.reference_reset_every=2"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run_dir) / "model.safetensors")


@pytest.mark.slow  # ~12 s: three RL runs in subprocesses
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference_dir = run_rl(tiny_rl_config(tmp_path / "straight", *STEPS))

    killed_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "slowthink.cli", "rl", f"run.output_dir={killed_dir}", *TINY_RL, *STEPS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        # Kill as soon as step 2 is safely on disk: the run is then somewhere inside step 3.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            latest = latest_checkpoint(killed_dir)
            if latest is not None and latest.name >= "step_000002" or process.poll() is not None:
                break
            time.sleep(0.02)
        assert process.poll() is None, f"run ended before it could be killed: {process.stderr.read()}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert latest_checkpoint(killed_dir).name < "step_000005"

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout

    expected, actual = _weights(reference_dir), _weights(killed_dir)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    # The metrics file holds each step exactly once, as if never interrupted.
    assert [r["step"] for r in read_metrics(killed_dir / "metrics.jsonl")] == [1, 2, 3, 4, 5]
