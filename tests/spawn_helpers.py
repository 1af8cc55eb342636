"""Spawning ranks for multi-process tests: a free port, and a join with a deadline so a hang fails the test."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

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
