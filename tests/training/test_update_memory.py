"""The update leaves no gradient memory behind for the generation that follows it.

After the last optimizer step of an RL step the rollout engine wakes its weights and KV
cache on the same GPU: gradients kept until the next update (a full fp32 copy of the
model under DDP, twice with DDP's own buckets) are memory the engine cannot have.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from slowthink.training.distributed import DistInfo, DistributedConfig, wrap_model

sys.path.insert(0, str(Path(__file__).parent))
from test_policy_update import _batch, _model, _update  # noqa: E402


def test_gradients_are_freed_after_the_last_optimizer_step():
    model = _model()
    metrics = _update(model, _batch(), "token_mean", micro=3, minibatches=2)
    assert metrics["optimizer_steps"] == 2  # it trained ...
    assert [name for name, p in model.named_parameters() if p.grad is not None] == []  # ... and kept no gradient


def test_ddp_keeps_its_gradients_in_its_buckets_only():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        wrapped = wrap_model(_model(), DistInfo(0, 2), DistributedConfig())  # "several ranks": DDP on a group of one
        assert wrapped.gradient_as_bucket_view
        ids = torch.tensor([[11, 12, 13, 14]])
        wrapped(input_ids=ids).logits.sum().backward()
        # Every gradient is a view of a bucket's storage, not a storage of its own.
        grads = [p.grad for p in wrapped.parameters() if p.grad is not None]
        assert grads and all(g._base is not None for g in grads)
    finally:
        dist.destroy_process_group()


def test_ddp_all_reduces_once_per_optimizer_step_not_per_micro_batch():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        wrapped = wrap_model(_model(), DistInfo(0, 2), DistributedConfig())
        reductions = []

        def counting(state, bucket):
            reductions.append(bucket.index())
            future = torch.futures.Future()
            future.set_result(bucket.buffer())
            return future

        wrapped.register_comm_hook(None, counting)
        batch = _batch()
        # 8 rows, two mini-batches of 4 in micro-batches of 3: two backward passes per optimizer step.
        metrics = _update(
            wrapped, batch, "token_mean", micro=3, minibatches=2, info=DistInfo(0, 1), row_ranks=torch.zeros(len(batch), dtype=torch.long)
        )
        assert metrics["optimizer_steps"] == 2
        buckets = len(set(reductions))
        assert len(reductions) == 2 * buckets  # each bucket once per optimizer step
    finally:
        dist.destroy_process_group()
