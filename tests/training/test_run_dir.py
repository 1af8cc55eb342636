"""Run directories: one owner, no silent mixing of
runs, resume only under the config the run was started with, and clear words on the way."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.cli.train import train
from slowthink.config import ConfigError, load_config
from slowthink.durable import LockedError, exclusive_lock
from slowthink.models.modeling import ModelLoadError
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint
from slowthink.training.run_dir import config_changes

torch.set_num_threads(1)
BASE = [
    "run.torch_threads=1",
    "run.progress=false",
    "data.tiny_size=32",
    "train.batch_size=4",
    "train.micro_batch_size=4",
    "optim.warmup_steps=0",
    "train.steps=2",
    "train.save_every=1",
    "train.keep_checkpoints=2",
]


def _overrides(out, *extra):
    return [f"run.output_dir={out}", *BASE, *extra]


def _config(out, *extra):
    return load_config(SFTConfig, None, _overrides(out, *extra))


def _weights(run_dir):
    return load_file(latest_checkpoint(run_dir) / "model.safetensors")


def test_a_second_run_on_a_locked_directory_fails_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    with exclusive_lock(run_dir / ".lock", "run directory"):  # another run holds it
        with pytest.raises(LockedError, match=f"PID {os.getpid()}"):
            run_sft(_config(run_dir))
        # Nothing was written by the refused run.
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
        result = CliRunner().invoke(app, ["sft", *_overrides(run_dir)])
    assert result.exit_code == 2 and f"PID {os.getpid()}" in result.output
    # Once the holder is gone, the directory is free.
    assert (run_sft(_config(run_dir)) / "metrics.jsonl").is_file()


def test_a_fresh_run_over_an_existing_run_is_refused_unless_overwrite(tmp_path):
    run_dir = run_sft(_config(tmp_path / "run"))
    before = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"already holds a run \(metrics.jsonl, checkpoints\).*--resume.*run.overwrite=true"):
        run_sft(_config(run_dir, "optim.lr=0.01"))
    assert (run_dir / "metrics.jsonl").read_text() == before  # nothing lost
    # Overwrite removes the old run's checkpoints: none of a later step survives to be resumed.
    (run_dir / "checkpoints" / "step_000009").mkdir()
    run_sft(_config(run_dir, "optim.lr=0.01", "run.overwrite=true", "train.steps=1"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest", "step_000001"]
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1]
    assert "lr: 0.01" in (run_dir / "config.yaml").read_text()


def test_resume_refuses_a_changed_config_naming_the_keys_and_allows_more_steps(tmp_path):
    run_dir = run_sft(_config(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"optim.lr: 0.002 -> 0.01; run.seed: 0 -> 3"):
        run_sft(_config(run_dir, "optim.lr=0.01", "run.seed=3"), resume=True)
    run_sft(_config(run_dir, "train.steps=3", "train.save_every=3"), resume=True)
    assert latest_checkpoint(run_dir).name == "step_000003"
    assert "steps: 3" in (run_dir / "config.yaml").read_text()  # the saved config follows


def test_config_changes_ignore_new_fields_and_allowed_keys():
    saved = {"run": {"output_dir": "a", "seed": 0}, "train": {"steps": 5}, "tracking": {"wandb": False}, "gone": 1}
    new = {"run": {"output_dir": "b", "seed": 0, "new_field": 1}, "train": {"steps": 9}, "tracking": {"wandb": True}}
    assert config_changes(saved, new) == {"gone": (1, "<no longer a field>")}


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path, capsys):
    run_sft(_config(tmp_path / "run"), resume=True)
    assert "--resume: no checkpoint in" in capsys.readouterr().err
    assert latest_checkpoint(tmp_path / "run").name == "step_000002"


def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(tmp_path, capsys):
    straight = run_sft(_config(tmp_path / "a", "train.steps=3"))
    damaged = tmp_path / "b"
    shutil.copytree(straight, damaged)
    weights = damaged / "checkpoints" / "step_000003" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    capsys.readouterr()
    run_sft(_config(damaged, "train.steps=3"), resume=True)
    err = capsys.readouterr().err
    assert str(weights) in err and "step_000002" in err
    a, b = _weights(straight), _weights(damaged)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in read_metrics(damaged / "metrics.jsonl")] == [1, 2, 3]


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path, capsys):
    import typer

    def run_then_interrupt(config, resume):
        run_sft(config, resume=resume)  # saved up to step 2, then the user presses Ctrl-C
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as exit_info:
        train(SFTConfig, run_then_interrupt, None, _overrides(tmp_path / "run", "optim.lr=0.003"), False, command="sft")
    assert exit_info.value.exit_code == 130
    err = capsys.readouterr().err
    assert "last checkpoint is step_000002" in err
    assert f"resume with: slowthink sft run.output_dir={tmp_path / 'run'} " in err and err.rstrip().endswith("optim.lr=0.003 --resume")


def test_a_run_that_stopped_before_its_first_step_can_simply_be_retried(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(ModelLoadError):
        run_sft(_config(run_dir, "model.path=/nonexistent/model"))
    assert (run_dir / "config.yaml").is_file()  # written, but nothing was trained
    assert latest_checkpoint(run_sft(_config(run_dir))).name == "step_000002"


def test_a_garbled_saved_config_is_named(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{run_dir / 'config.yaml'} cannot be read"):
        run_sft(_config(run_dir), resume=True)


# --- run.overwrite=true cut short by a kill ----------------------------------------------------

_OVERWRITE_KILLED_AT = """
import json, os, signal, sys
from pathlib import Path
from slowthink.config import load_config
from slowthink.recipes.sft import SFTConfig
from slowthink.training.run_dir import _prepare

run_dir, kill_at = Path(sys.argv[1]), int(sys.argv[2])
config = load_config(SFTConfig, None, json.loads(sys.argv[3]))
calls = 0

def killed_before(real):
    # Fault hook: SIGKILL this process just before its kill_at-th file-system mutation.
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

for name in ("unlink", "rmdir", "rename", "replace"):
    setattr(os, name, killed_before(getattr(os, name)))
_prepare(run_dir, config, resume=False)
print("FINISHED")
"""


def _old_run(run_dir):
    """A finished run of lr 0.002: config.yaml, two metrics rows, one verified checkpoint."""
    from slowthink.training.checkpoint import write_manifest
    from slowthink.training.run_dir import _prepare

    _prepare(run_dir, _config(run_dir), resume=False)
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    step = run_dir / "checkpoints" / "step_000002"
    step.mkdir(parents=True)
    torch.save({"step": 2}, step / "trainer_state.pt")
    (step / "model.safetensors").write_bytes(b"old weights")
    write_manifest(step)
    (run_dir / "checkpoints" / "latest").write_text(step.name)


@pytest.mark.slow
def test_a_kill_during_overwrite_never_leaves_the_old_checkpoints_resumable(tmp_path):
    """SIGKILL before each file-system call of a run.overwrite=true cleanup in turn; then
    `--resume` under the new config must refuse or start fresh, never continue the old weights
    (a kill after config.yaml was deleted left checkpoints that resumed silently)."""
    import json
    import subprocess
    import sys

    from slowthink.training.run_dir import _prepare

    template = tmp_path / "template"
    _old_run(template)
    new = ["optim.lr=0.5"]
    outcomes = []
    for kill_at in range(1, 40):
        run_dir = tmp_path / f"killed_at_{kill_at}"
        shutil.copytree(template, run_dir)
        done = subprocess.run(
            [sys.executable, "-c", _OVERWRITE_KILLED_AT, str(run_dir), str(kill_at), json.dumps(_overrides(run_dir, *new, "run.overwrite=true"))],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            checkpoint = _prepare(run_dir, _config(run_dir, *new), resume=True)
        except ConfigError as exc:
            outcomes.append("refused")
            assert "optim.lr" in str(exc) or "no config.yaml" in str(exc), exc
        else:
            outcomes.append("fresh")
            assert checkpoint is None, f"killed before call {kill_at}: resumed the old run's {checkpoint}"
            assert not (run_dir / ".overwritten").exists()  # a half-deleted old run is cleared
        if "FINISHED" in done.stdout:
            break
    assert done.returncode == 0 and kill_at > 3, (kill_at, done.stderr)
    assert outcomes[-1] == "fresh" and "refused" in outcomes


def test_resume_refuses_checkpoints_without_a_config(tmp_path):
    run_dir = tmp_path / "run"
    _old_run(run_dir)
    (run_dir / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="has checkpoints but no config.yaml"):
        run_sft(_config(run_dir), resume=True)


def test_run_files_get_the_permissions_of_a_plain_write(tmp_path):
    """config.yaml and checkpoints/latest were 0600 (mkstemp's mode), unlike every other file."""
    import stat

    old = os.umask(0o022)
    try:
        run_dir = run_sft(_config(tmp_path / "run", "train.steps=1"))
    finally:
        os.umask(old)
    files = [p for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    modes = {str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert "config.yaml" in modes and "checkpoints/latest" in modes
    assert set(modes.values()) == {"0o644"}, modes
