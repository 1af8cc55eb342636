"""The policy update: micro-batch size and data-parallel split never change it."""

from __future__ import annotations

import copy
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from slowthink.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.batch import build_sequence_batch
from slowthink.training.distributed import DistInfo
from slowthink.training.optim import OptimConfig, build_scheduler
from slowthink.training.policy_update import LossSettings, update_policy

SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)


def _model():
    return build_model(build_tokenizer(), SPEC, seed=0)


def _batch(seed: int = 0, rows: int = 8):
    generator = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(10, 100, (int(n),), generator=generator).tolist() for n in torch.randint(2, 6, (rows,), generator=generator)]
    responses = [torch.randint(10, 100, (int(n),), generator=generator).tolist() for n in torch.randint(1, 9, (rows,), generator=generator)]
    masks = [[1] * len(r) for r in responses]
    masks[1][0] = 0  # a tool-output token: never trained, never counted
    batch = build_sequence_batch(prompts, responses, masks, pad_id=0, advantages=torch.randn(rows, generator=generator).tolist())
    return batch.with_(ref_logprobs_BT=-torch.rand(batch.loss_mask_BT.shape, generator=generator) * 5)


SETTINGS = dict(clip_low=0.2, clip_high=0.28, max_length=16, kl_coef=0.1, kl_estimator="k3", entropy_coef=0.01, temperature=1.0, has_reference=True)


def _update(model, batch, aggregation: str, micro: int, minibatches: int, epochs: int = 1, info: DistInfo = DistInfo(), row_ranks=None):
    # Plain SGD: the parameter change is the gradient itself (Adam would amplify float noise
    # in near-zero gradients to full-size steps and hide what we compare).
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.5), total_steps=10)
    settings = LossSettings(aggregation=aggregation, old_is_current=minibatches == 1 and epochs == 1, **SETTINGS)
    return update_policy(model, optimizer, scheduler, batch, settings, minibatches, epochs, micro, grad_clip=0.0, info=info, row_ranks_N=row_ranks)


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean", "constant"])
def test_micro_batch_size_does_not_change_the_update(aggregation):
    batch, base = _batch(), _model()
    results = {}
    for micro in (1, 3, 8):
        model = copy.deepcopy(base)
        _update(model, batch, aggregation, micro=micro, minibatches=1)
        results[micro] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert not torch.allclose(results[8], torch.cat([p.detach().flatten() for p in base.parameters()]))
    torch.testing.assert_close(results[1], results[8], rtol=0, atol=1e-6)
    torch.testing.assert_close(results[3], results[8], rtol=0, atol=1e-6)


def test_on_policy_update_has_ratio_one_and_off_policy_does_not():
    batch = _batch()
    on = _update(_model(), batch, "token_mean", micro=4, minibatches=1)
    assert on["importance_ratio"] == 1.0 and on["clip_fraction"] == 0.0 and on["optimizer_steps"] == 1
    off = _update(_model(), batch.with_(old_logprobs_BT=torch.full_like(batch.old_logprobs_BT, -4.0)), "token_mean", micro=4, minibatches=2, epochs=2)
    assert off["optimizer_steps"] == 4 and off["importance_ratio"] != 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, aggregation: str, out: dict) -> None:
    import torch.distributed as dist

    from slowthink.training.distributed import wrap_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        batch = _batch()
        share = batch.select(slice(rank * 4, rank * 4 + 4))
        model = _model()
        trainer = wrap_model(model, DistInfo(rank, world))
        _update(trainer, share, aggregation, micro=2, minibatches=1, info=DistInfo(rank, world), row_ranks=torch.tensor([0] * 4 + [1] * 4))
        out[rank] = torch.cat([p.detach().flatten() for p in model.parameters()])
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean"])
def test_two_gloo_ranks_give_the_single_process_update(aggregation):
    single = _model()
    _update(single, _batch(), aggregation, micro=8, minibatches=1)
    expected = torch.cat([p.detach().flatten() for p in single.parameters()])
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(2, _free_port(), aggregation, out), nprocs=2, join=True)
        for rank in (0, 1):
            torch.testing.assert_close(out[rank], expected, rtol=0, atol=1e-6)
