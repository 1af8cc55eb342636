"""The policy update: micro-batch size and data-parallel split never change it."""

from __future__ import annotations

import copy
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.training.batch import build_sequence_batch
from slowthink.training.distributed import DistInfo
from slowthink.training.optim import OptimConfig, build_scheduler
from slowthink.training.policy_update import LossSettings, update_policy

sys.path.insert(0, str(Path(__file__).parents[1]))
from spawn_helpers import gloo_group  # noqa: E402

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
    return update_policy(model, optimizer, scheduler, batch, settings, minibatches, epochs, micro, grad_clip=0.0, info=info, row_ranks_K=row_ranks)


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

    from slowthink.training.distributed import wrap_model

    torch.set_num_threads(1)
    with gloo_group(rank, world, port):
        batch = _batch()
        share = batch.select(slice(rank * 4, rank * 4 + 4))
        model = _model()
        wrapped = wrap_model(model, DistInfo(rank, world))
        _update(wrapped, share, aggregation, micro=2, minibatches=1, info=DistInfo(rank, world), row_ranks=torch.tensor([0] * 4 + [1] * 4))
        out[rank] = torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.slow  # ~10 s each: two gloo processes start torch
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


def test_minibatch_plan_splits_the_kept_rows_evenly_into_the_configured_count():
    from slowthink.training.policy_update import minibatch_plan

    # 5 surviving rows, 2 mini-batches per epoch: 3 + 2, not a full 4 and a trailing 1.
    plan = minibatch_plan(5, num_minibatches=2, epochs=2, shuffle_seed=7)
    assert [len(rows) for rows in plan] == [3, 2, 3, 2]
    assert [r.tolist() for r in plan[:2]] == [[0, 1, 2], [3, 4]]
    assert sorted(torch.cat(plan[2:]).tolist()) == [0, 1, 2, 3, 4]  # epoch 2: every row, reshuffled
    assert [len(rows) for rows in minibatch_plan(1, 2, 1, 0)] == [1, 0]


def test_optimizer_steps_per_rl_step_are_what_the_config_says_whatever_survives():
    # 3 surviving rows with 2 mini-batches x 2 epochs planned. Before, the
    # count was epochs x ceil(kept / sequences_per_update): 2 steps, and the schedule
    # (planned for 4) never finished.
    batch = _batch(rows=3)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.5), total_steps=4)
    settings = LossSettings(aggregation="token_mean", old_is_current=False, **SETTINGS)
    metrics = update_policy(model, optimizer, scheduler, batch, settings, num_minibatches=2, epochs=2, micro_batch_size=8, grad_clip=0.0)
    assert metrics["optimizer_steps"] == 4 and scheduler.last_epoch == 4


def test_even_split_equals_two_separate_updates_on_its_halves():
    batch, base = _batch(rows=5), _model()
    split = copy.deepcopy(base)
    _update(split, batch, "seq_mean", micro=2, minibatches=2)
    by_hand = copy.deepcopy(base)
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.5)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.5), total_steps=10)
    settings = LossSettings(aggregation="seq_mean", old_is_current=False, **SETTINGS)
    for rows in (slice(0, 3), slice(3, 5)):
        update_policy(by_hand, optimizer, scheduler, batch.select(rows), settings, 1, 1, 2, grad_clip=0.0)
    for a, b in zip(split.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_a_step_with_no_rows_logs_null_statistics_and_still_advances_the_schedule():
    # No update means no entropy, KL or gradient norm (not 0.0, which drew
    # false dips in the report); the LR schedule still follows its planned horizon.
    empty = _batch().select(torch.tensor([], dtype=torch.long))
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=0.5), total_steps=4)
    settings = LossSettings(aggregation="token_mean", old_is_current=True, **SETTINGS)
    metrics = update_policy(model, optimizer, scheduler, empty, settings, num_minibatches=2, epochs=1, micro_batch_size=4, grad_clip=0.0)
    assert metrics["entropy"] is None and metrics["kl"] is None and metrics["grad_norm"] is None
    assert metrics["optimizer_steps"] == 0 and scheduler.last_epoch == 2
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
