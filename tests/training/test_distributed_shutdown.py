"""A recipe ends the process group it started, and leaves alone one its caller started.

A torchrun rank that exited with its gloo group alive aborted in the group's destructor
("terminate called without an active exception"), and torchrun then killed the other rank
mid-checkpoint: tests/training/test_fsdp.py failed that way once under load.
"""

from __future__ import annotations

import os

import pytest
from spawn_helpers import free_port, spawn_with_deadline

DEADLINE_S = 120


def _torchrun_env(rank: int, world: int, port: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)})


def _helpers(rank: int, world: int, port: int, caller_port: int, out: dict) -> None:
    import torch.distributed as dist

    from slowthink.training.distributed import init_distributed, shutdown

    _torchrun_env(rank, world, port)
    started = init_distributed()  # as under torchrun: it starts the group
    shutdown(started)
    ended = not dist.is_initialized()
    # Now the caller's own group, on another port: a rank that got here first could otherwise
    # reach the first group's store before the other rank had closed it, and wait forever.
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{caller_port}", rank=rank, world_size=world)
    joined = init_distributed()
    shutdown(joined)
    out[rank] = (started.owns_group, ended, joined.owns_group, dist.is_initialized())
    dist.destroy_process_group()


def _sft_rank(rank: int, world: int, port: int, root: str, out: dict) -> None:
    import torch.distributed as dist

    from slowthink.config import load_config
    from slowthink.recipes.sft import SFTConfig, run_sft

    _torchrun_env(rank, world, port)
    config = load_config(
        SFTConfig,
        None,
        [
            f"run.output_dir={root}/run",
            "run.torch_threads=1",
            "run.progress=false",
            "data.tiny_size=32",
            "train.steps=1",
            "train.batch_size=4",
            "train.micro_batch_size=2",
            "train.save_every=1",
            "optim.warmup_steps=0",
        ],
    )
    run_sft(config)
    out[rank] = dist.is_initialized()


def _spawn(target, *args) -> dict:
    return spawn_with_deadline(target, (2, free_port(), *args), DEADLINE_S, f"2 ranks did not finish in {DEADLINE_S} s")


def test_shutdown_ends_only_a_group_init_distributed_started():
    out = _spawn(_helpers, free_port())
    assert out == {0: (True, True, False, True), 1: (True, True, False, True)}


@pytest.mark.slow  # ~10 s: two spawned ranks load torch and train one step
def test_a_two_rank_sft_run_ends_its_process_group(tmp_path):
    out = _spawn(_sft_rank, str(tmp_path))
    assert out == {0: False, 1: False}
