"""Under torchrun only rank 0 prints "run written to" (every rank printed it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slowthink.cli.train import train
from slowthink.recipes.rl_config import RLConfig


def _train(tmp_path: Path) -> None:
    # The recipe itself is not under test: it returns its run directory at once.
    train(RLConfig, lambda config, resume: Path(config.run.output_dir), None, [f"run.output_dir={tmp_path / 'run'}"], resume=False)


def test_rank_zero_prints_the_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    _train(tmp_path)
    assert capsys.readouterr().out.count("run written to") == 1


def test_other_ranks_stay_quiet(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    _train(tmp_path)
    assert "run written to" not in capsys.readouterr().out


def test_single_process_prints(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    _train(tmp_path)
    assert "run written to" in capsys.readouterr().out


@pytest.mark.slow  # two torch processes start and train 1 step
def test_torchrun_prints_once_and_each_rank_takes_its_share_of_threads(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from rl_helpers import TINY_RL

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    overrides = [o for o in TINY_RL if not o.startswith("run.torch_threads")]
    command = [
        str(torchrun),
        "--nproc-per-node",
        "2",
        "--master-port",
        str(port),
        "-m",
        "slowthink.cli",
        "rl",
        f"run.output_dir={tmp_path / 'run'}",
        *overrides,
        "train.steps=1",
    ]
    env = {k: v for k, v in os.environ.items() if k != "SLOWTHINK_TORCH_THREADS"}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run written to") == 1
    assert "torch threads 1," in result.stdout  # OMP_NUM_THREADS=1 honoured (each rank took 2 before)
