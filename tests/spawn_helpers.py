"""Spawning ranks for multi-process tests: a free port, and a join with a deadline so a hang fails the test."""

from __future__ import annotations

import datetime
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_with_deadline(target: Callable, args: tuple, seconds: float, on_timeout: str, nprocs: int = 2) -> dict:
    """Run ``target(rank, *args, out)`` in ``nprocs`` spawned processes; return ``out`` (a dict they fill).

    Past ``seconds`` the processes are killed and the test fails with ``on_timeout``.
    """
    with mp.Manager() as manager:
        out = manager.dict()
        context = mp.start_processes(target, args=(*args, out), nprocs=nprocs, join=False, start_method="spawn")
        deadline = time.monotonic() + seconds
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(on_timeout)
        return dict(out)


@contextmanager
def gloo_group(rank: int, world: int, port: int, timeout_s: float | None = None) -> Iterator[None]:
    """A gloo process group for one spawned rank, ended as ``training/distributed.shutdown`` ends one.

    On a clean exit every rank meets at a barrier before any destroys the group: a rank that
    destroyed its gloo group while the other still used it aborted ("terminate called without an
    active exception", SIGABRT) in 2 of 9 runs of a sharded-checkpoint test. After an error there
    is no barrier, so the rank exits with its own traceback instead of waiting for the deadline.
    """
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    timeout = {} if timeout_s is None else {"timeout": datetime.timedelta(seconds=timeout_s)}
    dist.init_process_group("gloo", rank=rank, world_size=world, **timeout)
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()
