"""Collectives run on the device their backend needs (nccl rejects CPU tensors)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from slowthink.training.distributed import DistInfo, all_reduce_sum, collective_device


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_process_group(backend: str):
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)


def test_gloo_collectives_use_cpu_tensors():
    _one_process_group("gloo")
    try:
        assert collective_device() == torch.device("cpu")
        # DistInfo says "several ranks" so the collective really runs (on a group of one).
        assert all_reduce_sum(2.5, DistInfo(0, 2)) == 2.5
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nccl needs a CUDA device")
def test_nccl_collectives_use_the_current_gpu():
    torch.cuda.set_device(0)
    _one_process_group("nccl")
    try:
        assert collective_device().type == "cuda"
        assert all_reduce_sum(2.5, DistInfo(0, 2)) == 2.5  # a CPU tensor here raised before
    finally:
        dist.destroy_process_group()
