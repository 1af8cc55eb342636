"""Under FSDP only rank 0 needs the weights in host memory: the other ranks build an empty
(meta) model, and sharding fills their shards, buffers and optimizer state from rank 0.

Loading the full fp32 model on each of 8 ranks took 131 GB of host memory per rank at 32B.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402
from test_fsdp import _rl_batch, _rl_model  # noqa: E402


def _optimizer_with_state(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for index, parameter in enumerate(model.parameters()):
        optimizer.state[parameter] = {
            "step": torch.tensor(3.0),
            "exp_avg": torch.full_like(parameter, 0.01 * index),
            "exp_avg_sq": torch.ones_like(parameter),
        }
    return optimizer


def _rank(rank: int, port: int, out: dict) -> None:

    from slowthink.training.distributed import DistInfo, DistributedConfig, copy_full_weights, full_weights, wrap_model
    from slowthink.training.fsdp import full_optimizer_state, materialize_like
    from slowthink.training.logprobs import batched_logprobs

    torch.set_num_threads(1)
    with gloo_group(rank, 2, port):
        model = _rl_model()
        if rank == 1:
            model = model.to("meta")  # what empty_model builds: the architecture, no storage
            model.tie_weights()  # .to("meta") makes new parameters: the LM head is tied to the embeddings again
        optimizer = _optimizer_with_state(model)
        engine = copy.deepcopy(model)  # an HF engine's copy, built before the sharding (empty on rank 1)
        wrap_model(model, DistInfo(rank, 2), DistributedConfig(strategy="fsdp"), optimizer)
        if rank == 1:
            materialize_like(engine, model, "cpu")
        copy_full_weights(engine, model)  # the sync: gathered one tensor at a time
        batch = _rl_batch()
        logprobs = batched_logprobs(model, batch.input_ids_BL, batch.attention_mask_BL, 1.0, 4)
        weights = {k: v.clone() for k, v in full_weights(model).items()}
        moments = full_optimizer_state(model, optimizer)
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        out[rank] = {"logprobs": logprobs, "weights": weights, "buffers": buffers, "moments": moments, "engine": engine.state_dict()}
        out[rank] = {**out[rank], "engine_buffers": {k: v.clone() for k, v in engine.named_buffers()}}


@pytest.mark.slow
def test_an_empty_rank_gets_rank_0s_weights_buffers_and_optimizer_state():
    from slowthink.training.logprobs import batched_logprobs

    out = spawn_with_deadline(_rank, (free_port(),), 240, "2 FSDP ranks did not finish (a hang in a collective?)")
    expected = _rl_model()
    batch = _rl_batch()
    logprobs = batched_logprobs(expected, batch.input_ids_BL, batch.attention_mask_BL, 1.0, 4)
    for rank in (0, 1):
        for name, value in expected.state_dict().items():
            assert torch.equal(out[rank]["weights"][name], value), (rank, name)
            assert torch.equal(out[rank]["engine"][name], value), (rank, name)  # the engine copy, synced
        for name, value in expected.named_buffers():
            assert torch.equal(out[rank]["buffers"][name], value), (rank, name)  # the rotary frequencies
            assert torch.equal(out[rank]["engine_buffers"][name], value), (rank, name)
        torch.testing.assert_close(out[rank]["logprobs"], logprobs, rtol=0, atol=1e-6)
    state = out[0]["moments"]["state"]  # gathered to rank 0: rank 0's values, though rank 1 started with none
    reference = _optimizer_with_state(expected)
    for index, parameter in enumerate(expected.parameters()):
        assert torch.equal(state[index]["exp_avg"], reference.state[parameter]["exp_avg"]), index
