"""Under torchrun only rank 0 prints "run written to" (issue 7 item 16)."""

from __future__ import annotations

from pathlib import Path

from slowthink.recipes.cli_train import train
from slowthink.recipes.rl_config import RLConfig


def _train(tmp_path: Path) -> None:
    # The recipe itself is not under test: it returns its run directory at once.
    train(RLConfig, lambda config, resume: Path(config.run.output_dir), None,
          [f"run.output_dir={tmp_path / 'run'}"], resume=False)


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
