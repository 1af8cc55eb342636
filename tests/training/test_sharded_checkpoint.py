"""Sharded checkpoints (torch.distributed.checkpoint) on 2 gloo ranks.

Saved by 2 FSDP ranks and read by 1 process, or saved by 1 process and read by 2 FSDP ranks,
a sharded checkpoint restores exactly (torch.equal) the weights and AdamW moments that the
full checkpoint (rank 0's gather) restores. A SIGKILL while an asynchronous save is writing
leaves the previous checkpoint the one a resume finds, whole.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402
from test_fsdp import _rl_model  # noqa: E402

from slowthink.training.checkpoint import is_sharded_checkpoint, load_trainer_state, resume_checkpoint  # noqa: E402

TIMEOUT_S = 240
IDS = torch.arange(24).remainder(50).reshape(2, 12)  # the same rows on every rank: FSDP averages equal gradients


def _train(model, optimizer, steps: int = 2) -> None:
    for _ in range(steps):
        model(IDS).logits.float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()


def _gathered(model, optimizer, info) -> tuple[dict, dict]:
    """Full weights and optimizer state (``optimizer.state_dict()`` layout), as the full format saves them."""
    from slowthink.training.distributed import checkpoint_states, full_weights

    weights = {k: v.detach().clone() for k, v in full_weights(model).items()}
    return weights, checkpoint_states(model, optimizer, info)[1]


def _setup(rank: int, world: int):
    from slowthink.training.distributed import DistInfo, DistributedConfig

    torch.set_num_threads(1)
    return DistInfo(rank, world), DistributedConfig(strategy="fsdp")


def _group(rank: int, world: int, port: int):
    """This rank's gloo group (spawn_helpers.gloo_group), or none for one process."""
    return gloo_group(rank, world, port) if world > 1 else contextlib.nullcontext()


def _save_both(rank: int, world: int, port: int, root: str, out: dict) -> None:
    """Train, then save the same state in both formats; rank 0 reports what it saved."""
    from slowthink.training import checkpoint as ckpt
    from slowthink.training.distributed import checkpoint_states, wrap_model
    from slowthink.training.sharded_checkpoint import ShardedWriter

    info, config = _setup(rank, world)
    with _group(rank, world, port):
        model = _rl_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        wrap_model(model, info, config, optimizer)
        _train(model, optimizer)
        state = {"step": 2}
        ShardedWriter(Path(root) / "sharded", info, keep_last=2).save(2, model, optimizer, None, state)
        weights, optimizer_state = checkpoint_states(model, optimizer, info)
        if info.is_main:
            ckpt.save_checkpoint(Path(root) / "full", 2, model, None, {**state, "optimizer": optimizer_state}, state_dict=weights)
        saved = _gathered(model, optimizer, info)
        if info.is_main:
            out["saved"] = saved


def _load_both(rank: int, world: int, port: int, root: str, out: dict) -> None:
    """Resume each format at this world size; rank 0 reports both restored states."""
    from slowthink.training import checkpoint as ckpt
    from slowthink.training.distributed import wrap_model
    from slowthink.training.sharded_checkpoint import load_sharded

    info, config = _setup(rank, world)
    with _group(rank, world, port):
        restored = {}
        for kind in ("full", "sharded"):
            checkpoint = resume_checkpoint(Path(root) / kind)
            model = _rl_model()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            if kind == "full":  # today's path: loaded before the sharding, resharded by it
                ckpt.load_weights(model, checkpoint)
                optimizer.load_state_dict(load_trainer_state(checkpoint)["optimizer"])
            wrap_model(model, info, config, optimizer)
            load_sharded(checkpoint, model, optimizer)  # nothing for the full checkpoint
            restored[kind] = _gathered(model, optimizer, info)
        if info.is_main:
            out.update(restored)


def _run(target, world: int, root: Path) -> dict:
    if world == 1:
        out: dict = {}
        target(0, 1, 0, str(root), out)
        return out
    return spawn_with_deadline(target, (2, free_port(), str(root)), TIMEOUT_S, "2 ranks hung in a checkpoint collective")


def _assert_equal(a: tuple[dict, dict], b: tuple[dict, dict]) -> None:
    (weights_a, optim_a), (weights_b, optim_b) = a, b
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    # Hyperparameters alike; a gathered state lists betas where an optimizer holds a tuple.
    assert _plain(optim_a["param_groups"]) == _plain(optim_b["param_groups"])
    assert optim_a["state"].keys() == optim_b["state"].keys()
    for index, moments in optim_a["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, optim_b["state"][index][name]), (index, name)


@pytest.mark.slow
@pytest.mark.parametrize("save_world,load_world", [(2, 1), (1, 2)])
def test_sharded_checkpoint_resumes_at_another_world_size_exactly_as_the_full_one(tmp_path, save_world, load_world):
    saved = _run(_save_both, save_world, tmp_path)["saved"]
    sharded = resume_checkpoint(tmp_path / "sharded")
    assert is_sharded_checkpoint(sharded) and not (sharded / "model.safetensors").exists()
    assert len(list((sharded / "sharded").glob("*.distcp"))) == save_world  # one file per rank: nothing gathered
    restored = _run(_load_both, load_world, tmp_path)
    _assert_equal(restored["full"], saved)
    _assert_equal(restored["sharded"], restored["full"])
    assert saved[1]["state"], "the AdamW moments were saved"


def _plain(groups: list[dict]) -> list[dict]:
    return [{key: list(value) if isinstance(value, tuple) else value for key, value in group.items()} for group in groups]


def _killed_mid_save(rank: int, world: int, port: int, root: str, out: dict) -> None:
    """Publish step 1 asynchronously, then hang inside step 2's write until killed."""
    from torch.distributed.checkpoint import filesystem

    from slowthink.training.distributed import wrap_model
    from slowthink.training.sharded_checkpoint import ShardedWriter

    write_data = filesystem.FileSystemWriter.write_data

    def stalled(self, plan, planner):
        if "step_000002" in str(self.path):
            out[f"writing_{rank}"] = True
            time.sleep(3600)  # the SIGKILL comes here
        return write_data(self, plan, planner)

    filesystem.FileSystemWriter.write_data = stalled
    info, config = _setup(rank, world)
    with _group(rank, world, port):  # never left: the test kills this rank
        model = _rl_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        wrap_model(model, info, config, optimizer)
        writer = ShardedWriter(Path(root), info, keep_last=2, async_save=True)
        _train(model, optimizer, steps=1)
        writer.save(1, model, optimizer, None, {"step": 1})
        saved = _gathered(model, optimizer, info)  # training goes on while step 1 is written
        if info.is_main:
            # A copy: torch.multiprocessing shares a tensor's storage, and AdamW's step count is
            # the optimizer's own tensor, which the next step increments in place.
            out["saved"] = copy.deepcopy(saved)
        _train(model, optimizer, steps=1)
        writer.save(2, model, optimizer, None, {"step": 2})  # publishes step 1, starts step 2
        time.sleep(3600)


@pytest.mark.slow
def test_sigkill_during_an_async_save_leaves_the_previous_checkpoint_whole(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        context = mp.start_processes(_killed_mid_save, args=(2, free_port(), str(tmp_path), out), nprocs=2, join=False, start_method="spawn")
        deadline = time.monotonic() + TIMEOUT_S
        while not (out.get("writing_0") and out.get("writing_1")):
            assert time.monotonic() < deadline, "the ranks never reached the step-2 write"
            assert all(p.is_alive() for p in context.processes), "a rank died before the step-2 write"
            time.sleep(0.5)
        for process in context.processes:
            process.kill()  # SIGKILL, mid-write
            process.join()
        saved = out["saved"]
    assert (tmp_path / "checkpoints" / "step_000002.tmp").is_dir()  # the half-written one
    checkpoint = resume_checkpoint(tmp_path)
    assert checkpoint.name == "step_000001" and load_trainer_state(checkpoint)["step"] == 1
    # Resumed by one process: exactly the state step 1 saved.
    restored = _run(_load_both_from(checkpoint), 1, tmp_path)
    _assert_equal(restored["state"], saved)


def _load_both_from(checkpoint: Path):
    def load(rank: int, world: int, port: int, root: str, out: dict) -> None:
        from slowthink.training.distributed import DistInfo
        from slowthink.training.sharded_checkpoint import load_sharded

        model = _rl_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        load_sharded(checkpoint, model, optimizer)
        out["state"] = _gathered(model, optimizer, DistInfo())

    return load


def test_a_corrupted_shard_falls_back_to_the_previous_checkpoint_naming_it(tmp_path, capsys):
    from slowthink.training.distributed import DistInfo
    from slowthink.training.sharded_checkpoint import ShardedWriter, load_sharded

    model = _rl_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    writer = ShardedWriter(tmp_path, DistInfo(), keep_last=2)
    _train(model, optimizer, steps=1)
    writer.save(1, model, optimizer, None, {"step": 1})
    saved = copy.deepcopy(_gathered(model, optimizer, DistInfo()))  # the step count is AdamW's own tensor
    _train(model, optimizer, steps=1)
    writer.save(2, model, optimizer, None, {"step": 2})
    shard = tmp_path / "checkpoints" / "step_000002" / "sharded" / "__0_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights
    shard.write_bytes(bytes(data))

    checkpoint = resume_checkpoint(tmp_path)
    assert checkpoint.name == "step_000001"
    assert f"{shard} does not match its SHA-256" in capsys.readouterr().err
    fresh = _rl_model()
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    load_sharded(checkpoint, fresh, fresh_optimizer)
    _assert_equal(_gathered(fresh, fresh_optimizer, DistInfo()), saved)


def test_async_save_with_the_full_format_is_a_config_error():
    from slowthink.training.distributed import DistributedConfig

    with pytest.raises(ValueError, match="distributed.async_save applies to sharded checkpoints"):
        DistributedConfig(checkpoint_format="full", async_save=True)
