"""The ranks of one tensor-parallel vLLM engine gather their requests, and must agree on how to sample.

No vLLM is needed: only the gather runs, on 2 gloo ranks forming one engine's group.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402


def _rank(rank: int, port: int, temperatures: tuple[float, float], out: dict) -> None:
    from slowthink.rollout.generator import SamplingParams
    from slowthink.rollout.vllm_backend import VLLMGenerator, _tensor_parallel_group, vllm_sampling_kwargs

    with gloo_group(rank, 2, port):
        engine = object.__new__(VLLMGenerator)  # the gather needs no engine
        engine.tp_group, engine.tp_rank, engine.tp_size = _tensor_parallel_group(2)
        settings = vllm_sampling_kwargs(SamplingParams(temperature=temperatures[rank], n=2))
        try:
            prompts, seeds, mine = engine._gather_tensor_parallel([[rank, 7]], [100 + rank], settings)
            out[rank] = (prompts, seeds, (mine.start, mine.stop))
        except Exception as exc:
            out[rank] = f"{type(exc).__name__}: {exc}"


def test_a_group_gathers_its_prompts_and_each_rank_keeps_its_own():
    out = spawn_with_deadline(_rank, (free_port(), (1.0, 1.0)), 60, "the gather hung")
    assert out[0] == ([[0, 7], [1, 7]], [100, 101], (0, 1))
    assert out[1] == ([[0, 7], [1, 7]], [100, 101], (1, 2))


def test_ranks_sampling_with_other_settings_is_an_error():
    out = spawn_with_deadline(_rank, (free_port(), (1.0, 0.0)), 60, "the gather hung")
    assert "tensor-parallel rank 1 samples with" in out[0] and "same phase" in out[0]
    assert "tensor-parallel rank 0 samples with" in out[1]


def _sync_rank(rank: int, port: int, out: dict) -> None:
    import torch

    from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
    from slowthink.rollout.vllm_backend import full_weights
    from slowthink.training.distributed import DistInfo, DistributedConfig, wrap_model

    torch.set_num_threads(1)
    with gloo_group(rank, 2, port):
        model = build_model(build_tokenizer(), TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0)
        wrap_model(model, DistInfo(rank, 2), DistributedConfig(strategy="fsdp"))
        out[rank] = {name: tensor.clone() for name, tensor in full_weights(model, torch.bfloat16)}


def test_the_fsdp_sync_gathers_shards_cast_to_the_engine_dtype():
    import torch

    from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer

    out = spawn_with_deadline(_sync_rank, (free_port(),), 120, "the gather hung")
    expected = build_model(build_tokenizer(), TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0).state_dict()
    for rank in (0, 1):
        assert out[rank].keys() == expected.keys()
        for name, value in expected.items():
            assert out[rank][name].dtype == torch.bfloat16, name  # half the bytes on the wire
            assert torch.equal(out[rank][name], value.to(torch.bfloat16)), name
