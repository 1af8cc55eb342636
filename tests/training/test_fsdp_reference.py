"""The KL reference under FSDP2, on 2 gloo ranks: sharded like the policy, in its compute dtype.

Its log-probs equal an unsharded reference's in the same dtype, a reset copies the policy's
shards and equals the unsharded reset, and with bf16 compute the policy and a fresh reference
agree exactly at step 0 (a full fp32 reference beside a bf16 policy made the KL non-zero).
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

SCALE = 1.5  # the "trained" policy of the reset: every weight times 1.5, identical on any sharding


def _rows():
    batch = _rl_batch()
    return batch.input_ids_BL, batch.attention_mask_BL


def _rank(rank: int, port: int, param_dtype: str | None, out: dict) -> None:

    from slowthink.training.distributed import (
        DistInfo,
        DistributedConfig,
        done_with_reference,
        reset_reference,
        weights_for_checkpoint,
        wrap_model,
        wrap_reference,
    )
    from slowthink.training.logprobs import batched_logprobs

    torch.set_num_threads(1)
    with gloo_group(rank, 2, port):
        info, config = DistInfo(rank, 2), DistributedConfig(strategy="fsdp", param_dtype=param_dtype)
        policy = _rl_model()
        reference = copy.deepcopy(policy).eval().requires_grad_(False)
        wrap_model(policy, info, config)
        wrap_reference(reference, info, config)
        ids, mask = _rows()
        result = {"policy": batched_logprobs(policy, ids, mask, 1.0, 3), "reference": batched_logprobs(reference, ids, mask, 1.0, 3)}
        done_with_reference(reference)  # the root stays gathered after a forward (for the LM head)
        policy.reshard()
        result["shard_sizes"] = {name: (p.to_local().numel(), p.numel(), str(p.dtype)) for name, p in reference.named_parameters()}
        with torch.no_grad():
            for parameter in policy.parameters():
                parameter.to_local().mul_(SCALE)
        reset_reference(reference, policy)
        result["after_reset"] = batched_logprobs(reference, ids, mask, 1.0, 3)
        weights = weights_for_checkpoint(reference, info)
        if rank == 0:
            result["reset_weights"] = {k: v.clone() for k, v in weights.items()}
        out[rank] = result


def _unsharded(dtype: torch.dtype, scale: float = 1.0):
    from slowthink.training.logprobs import batched_logprobs

    reference = _rl_model().eval().requires_grad_(False)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.mul_(scale)
            parameter.data = parameter.data.to(dtype)  # weights in the compute dtype, buffers as stored
    return reference, batched_logprobs(reference, *_rows(), 1.0, 3)


@pytest.mark.slow
@pytest.mark.parametrize("param_dtype", [None, "bfloat16"])
def test_the_sharded_reference_equals_the_unsharded_one_and_resets_shard_to_shard(param_dtype):
    dtype = getattr(torch, param_dtype or "float32")
    out = spawn_with_deadline(_rank, (free_port(), param_dtype), 240, "2 FSDP ranks did not finish (a hang in a collective?)")
    _, expected = _unsharded(dtype)
    reset_model, expected_after_reset = _unsharded(dtype, SCALE)
    for rank in (0, 1):
        # 1. Sharded: each rank holds about half of every weight, in the compute dtype.
        sizes = out[rank]["shard_sizes"]
        assert all(local <= (full + 1) // 2 and kind == str(dtype) for local, full, kind in sizes.values()), sizes
        # 2. Its log-probs are the unsharded reference's in that dtype ...
        torch.testing.assert_close(out[rank]["reference"], expected, rtol=0, atol=1e-6)
        # 3. ... and, at step 0, exactly the policy's: the KL starts at zero.
        assert torch.equal(out[rank]["reference"], out[rank]["policy"])
        # 4. A reset gives what an unsharded reset gives.
        torch.testing.assert_close(out[rank]["after_reset"], expected_after_reset, rtol=0, atol=1e-6)
    saved = out[0]["reset_weights"]
    for name, value in reset_model.state_dict().items():
        assert torch.equal(saved[name], value), name


def test_fsdp_on_several_ranks_loads_on_the_cpu_and_lets_the_sharding_move_it():
    from slowthink.training.distributed import DistInfo, DistributedConfig, load_device

    assert load_device("cuda", DistInfo(0, 8), DistributedConfig(strategy="fsdp")) == "cpu"
    assert load_device("cuda", DistInfo(0, 8), DistributedConfig(strategy="ddp")) == "cuda"
    assert load_device("cuda", DistInfo(), DistributedConfig(strategy="fsdp")) == "cuda"  # one process: nothing shards it
