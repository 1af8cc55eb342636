"""Checkpoints: weights + trainer state round trip, RNG streams, partial writes, pruning."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from slowthink.durable import NoSpaceError
from slowthink.models.modeling import load_model
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.checkpoint import (
    MANIFEST,
    CheckpointError,
    latest_checkpoint,
    load_trainer_state,
    load_weights,
    resume_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

torch.set_num_threads(1)
SPEC = TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture()
def model(tokenizer):
    return build_model(tokenizer, SPEC, seed=0)


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def steps_on_disk(run_dir) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir())


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path, model, tokenizer):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.tensor([[5, 6, 7]])).logits.sum().backward()
    optimizer.step()
    saved_weights = {k: v.clone() for k, v in model.state_dict().items()}
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = {"step": 7, "optimizer": optimizer.state_dict(), "rng": rng_state(), "sampler": {"epoch": 0, "position": 3}}
    expected_draws = draws()

    path = save_checkpoint(tmp_path, 7, model, tokenizer, state)
    assert path == tmp_path / "checkpoints" / "step_000007"
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    assert latest_checkpoint(tmp_path) == path

    # Move everything on, then restore.
    fresh = build_model(tokenizer, SPEC, seed=5)
    draws()
    load_weights(fresh, path)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, saved_weights[name]), name
    restored = load_trainer_state(path)
    assert restored["step"] == 7 and restored["sampler"] == {"epoch": 0, "position": 3}
    set_rng_state(restored["rng"])
    assert draws() == expected_draws
    new_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    new_optimizer.load_state_dict(restored["optimizer"])
    first = next(iter(optimizer.state.values()))
    again = next(iter(new_optimizer.state.values()))
    assert torch.equal(first["exp_avg"], again["exp_avg"]) and int(again["step"]) == 1


def test_checkpoint_is_a_loadable_hf_model(tmp_path, model, tokenizer):
    path = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1})
    reloaded = load_model(str(path))
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model.eval()(ids).logits)


def test_no_checkpoint_yet(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "never-created") is None


def test_leftover_tmp_directory_is_ignored_and_replaced(tmp_path, model, tokenizer):
    first = save_checkpoint(tmp_path, 10, model, tokenizer, {"step": 10})
    # A SIGKILL while writing step 20 leaves a partial step_000020.tmp behind.
    partial = tmp_path / "checkpoints" / "step_000020.tmp"
    partial.mkdir()
    (partial / "config.json").write_text("{")
    (partial / "trainer_state.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == first
    # Even with the pointer gone, a .tmp directory is never taken for a checkpoint.
    (tmp_path / "checkpoints" / "latest").unlink()
    assert latest_checkpoint(tmp_path) == first
    second = save_checkpoint(tmp_path, 20, model, tokenizer, {"step": 20})
    assert not partial.exists()
    assert latest_checkpoint(tmp_path) == second and load_trainer_state(second)["step"] == 20


def test_latest_pointing_to_a_missing_directory_falls_back(tmp_path, model, tokenizer):
    first = save_checkpoint(tmp_path, 3, model, tokenizer, {"step": 3}, keep_last=5)
    save_checkpoint(tmp_path, 6, model, tokenizer, {"step": 6}, keep_last=5)
    (tmp_path / "checkpoints" / "latest").write_text("step_000099")
    assert latest_checkpoint(tmp_path).name == "step_000006"
    # A checkpoint directory without its trainer state is not complete.
    (tmp_path / "checkpoints" / "step_000006" / "trainer_state.pt").unlink()
    assert latest_checkpoint(tmp_path) == first
    (first / "trainer_state.pt").unlink()
    assert latest_checkpoint(tmp_path) is None


def test_keep_last_prunes_the_oldest(tmp_path, model, tokenizer):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model, tokenizer, {"step": step}, keep_last=2)
    assert steps_on_disk(tmp_path) == ["step_000003", "step_000004"]
    save_checkpoint(tmp_path, 5, model, tokenizer, {"step": 5}, keep_last=1)
    assert steps_on_disk(tmp_path) == ["step_000005"]


def test_fresh_run_over_an_old_run_keeps_its_new_checkpoint(tmp_path, model, tokenizer):
    # A real bug: pruning by name deleted the step just written when an old run in the same
    # directory had reached later steps, leaving `latest` pointing at nothing.
    for step in (90, 100):
        save_checkpoint(tmp_path, step, model, tokenizer, {"step": step}, keep_last=2)
    path = save_checkpoint(tmp_path, 10, model, tokenizer, {"step": 10}, keep_last=2)
    assert path.is_dir()
    assert latest_checkpoint(tmp_path) == path
    assert steps_on_disk(tmp_path) == ["step_000010"]


def test_steps_sort_by_number_not_by_name(tmp_path, model, tokenizer):
    save_checkpoint(tmp_path, 999_999, model, tokenizer, {"step": 999_999}, keep_last=2)
    save_checkpoint(tmp_path, 1_000_000, model, tokenizer, {"step": 1_000_000}, keep_last=2)
    save_checkpoint(tmp_path, 1_000_001, model, tokenizer, {"step": 1_000_001}, keep_last=2)
    assert steps_on_disk(tmp_path) == ["step_1000000", "step_1000001"]


def test_loading_into_a_different_architecture_names_the_checkpoint(tmp_path, model, tokenizer):
    path = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1})
    other = build_model(tokenizer, TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64))
    with pytest.raises(RuntimeError, match=f"checkpoint {path} does not match the model"):
        load_weights(other, path)


# --- Verification, fallback and full disks ---------------------------------------------------


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damaged", ["model.safetensors", "trainer_state.pt"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, model, tokenizer, capsys, damaged):
    first = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    assert resume_checkpoint(tmp_path) == second
    _truncate(second / damaged)
    assert resume_checkpoint(tmp_path) == first
    warning = capsys.readouterr().err
    assert str(second / damaged) in warning and "step_000001" in warning


def test_a_flipped_byte_is_caught_by_the_manifest(tmp_path, model, tokenizer, capsys):
    first = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    data = bytearray((second / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF  # same size, different content: only a hash sees it
    (second / "model.safetensors").write_bytes(bytes(data))
    assert resume_checkpoint(tmp_path) == first
    assert "model.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("pointed", [True, False])
def test_a_deleted_trainer_state_is_reported_and_the_previous_checkpoint_used(tmp_path, model, tokenizer, capsys, pointed):
    """The fallback was right but silent: the directory was skipped as if it were not there."""
    first = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    (second / "trainer_state.pt").unlink()
    if not pointed:
        (tmp_path / "checkpoints" / "latest").unlink()
    assert resume_checkpoint(tmp_path) == first
    warning = capsys.readouterr().err
    assert f"{second / 'trainer_state.pt'} is missing" in warning and "step_000001" in warning


def test_a_deleted_trainer_state_of_a_manifestless_checkpoint_is_reported(tmp_path, model, tokenizer, capsys):
    first = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    (second / MANIFEST).unlink()
    (second / "trainer_state.pt").unlink()
    assert resume_checkpoint(tmp_path) == first
    assert str(second / "trainer_state.pt") in capsys.readouterr().err


@pytest.mark.parametrize("pointer", [b"\xff\xfestep_000002\n", b"../../elsewhere", b"step_\x00002", b""])
def test_an_unreadable_latest_pointer_falls_back_with_a_warning(tmp_path, model, tokenizer, capsys, pointer):
    save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    latest = tmp_path / "checkpoints" / "latest"
    latest.write_bytes(pointer)
    assert latest_checkpoint(tmp_path) == second
    assert resume_checkpoint(tmp_path) == second
    assert f"warning: {latest}" in capsys.readouterr().err


def test_no_good_checkpoint_is_an_error_naming_the_file(tmp_path, model, tokenizer):
    only = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1})
    _truncate(only / "trainer_state.pt")
    with pytest.raises(CheckpointError, match=str(only / "trainer_state.pt")):
        resume_checkpoint(tmp_path)


def test_a_checkpoint_without_manifest_still_loads_and_a_broken_one_is_named(tmp_path, model, tokenizer):
    old = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1})
    (old / MANIFEST).unlink()  # written by a version before manifests
    assert resume_checkpoint(tmp_path) == old
    _truncate(old / "model.safetensors")
    with pytest.raises(CheckpointError, match=str(old / "model.safetensors")):
        resume_checkpoint(tmp_path)


def test_full_disk_during_a_checkpoint_write_names_the_path_and_cleans_up(tmp_path, model, tokenizer, monkeypatch):
    """Fault injection: the trainer-state write fails with ENOSPC part-way, as on a full disk
    (torch wraps it in a RuntimeError such as 'unexpected pos'; the OSError stays in its chain)."""
    import errno

    first = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1}, keep_last=2)

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(NoSpaceError, match=f"no space left on {tmp_path / 'checkpoints'}"):
        save_checkpoint(tmp_path, 2, model, tokenizer, {"step": 2}, keep_last=2)
    assert steps_on_disk(tmp_path) == ["step_000001"]  # no partial step_000002.tmp left
    assert resume_checkpoint(tmp_path) == first


_SAVE_ON_A_TINY_DISK = """
import subprocess, sys, torch
from pathlib import Path
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={sys.argv[2]}", "tmpfs", sys.argv[1]], check=True)
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.checkpoint import save_checkpoint
torch.set_num_threads(1)
tok = build_tokenizer()
model = build_model(tok, TinyModelSpec(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128), seed=0)
real_save = torch.save
def save(obj, f, *args, **kwargs):
    print("weights fit")  # torch.save is called for the trainer state only
    return real_save(obj, f, *args, **kwargs)
torch.save = save
try:
    save_checkpoint(Path(sys.argv[1]), 1, model, tok, {"step": 1, "big": torch.zeros(1_000_000)})
except Exception as exc:
    print("ERROR", type(exc).__name__, exc)
print("LEFT", sorted(p.name for p in (Path(sys.argv[1]) / "checkpoints").iterdir()))
"""


def _save_on_a_tiny_disk(tmp_path, size: str):
    """Run _SAVE_ON_A_TINY_DISK on a tmpfs of ``size`` in a private mount namespace (skips where not allowed)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no unprivileged mount namespaces here")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", _SAVE_ON_A_TINY_DISK, str(mount), size],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if "mount" in done.stderr and done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr[-200:]}")
    return mount, done


@pytest.mark.slow
def test_full_disk_on_a_real_tiny_filesystem(tmp_path):
    """The same on a 64 KiB tmpfs: the weights do not fit."""
    mount, done = _save_on_a_tiny_disk(tmp_path, "64k")
    assert f"ERROR NoSpaceError no space left on {mount / 'checkpoints'}" in done.stdout, done.stdout + done.stderr
    assert "LEFT ['latest']" not in done.stdout and "LEFT []" in done.stdout, done.stdout


@pytest.mark.slow
def test_full_disk_while_the_trainer_state_is_written(tmp_path):
    """The weights fit and trainer_state.pt does not: torch's zip writer said only
    "[enforce fail at inline_container.cc] unexpected pos", a raw RuntimeError with exit 1."""
    mount, done = _save_on_a_tiny_disk(tmp_path, "640k")
    assert "weights fit" in done.stdout, done.stdout + done.stderr  # the disk is sized for this case
    assert f"ERROR NoSpaceError no space left on {mount / 'checkpoints'}" in done.stdout, done.stdout + done.stderr
    assert "LEFT []" in done.stdout, done.stdout


def test_an_empty_rank_does_not_read_the_weights_it_cannot_hold(tmp_path, model, tokenizer):
    # Under FSDP, ranks other than 0 hold the architecture on `meta` and get their shards from
    # rank 0 (training/fsdp.py): reading model.safetensors there cost a full copy of the weights
    # in host memory per rank. A damaged file shows whether it is read.
    checkpoint = save_checkpoint(tmp_path, 1, model, tokenizer, {"step": 1})
    _truncate(checkpoint / "model.safetensors")
    load_weights(build_model(tokenizer, SPEC, seed=0).to("meta"), checkpoint)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_weights(model, checkpoint)  # a rank that holds weights reads them
