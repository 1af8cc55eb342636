"""The vLLM backend's pure mappings, tested without vLLM (the real engine: tests/with_vllm)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.vllm_backend import (
    BackendUnavailableError,
    VLLMGenerator,
    completion_from_vllm,
    full_weights,
    prompt_seed,
    vllm_sampling_kwargs,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_sampling_params_map_onto_vllm_kwargs():
    params = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=32768, stop=("```output",), n=8, seed=5)
    assert vllm_sampling_kwargs(params, seed=21) == {
        "n": 8,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_tokens": 32768,
        "stop": ["```output"],
        "include_stop_str_in_output": True,
        "logprobs": 0,
        "seed": 21,
        "skip_special_tokens": True,
    }
    greedy = vllm_sampling_kwargs(SamplingParams(temperature=0.0, max_new_tokens=4))
    assert (greedy["temperature"], greedy["stop"], greedy["n"], greedy["seed"]) == (0.0, None, 1, None)


def test_prompt_seeds_give_every_completion_its_own_stream():
    # vLLM seeds the n completions of a request base + 0 .. base + n - 1.
    n = 4
    streams = [prompt_seed(7, index, n) + i for index in range(5) for i in range(n)]
    assert len(set(streams)) == 20 and prompt_seed(None, 3, n) is None


def test_completion_output_becomes_a_completion():
    logprob = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    output = SimpleNamespace(
        index=0,
        text="ab```output",
        token_ids=(11, 12, 13),
        logprobs=[{11: logprob(-0.1), 99: logprob(-3.0)}, {12: logprob(-0.2)}, {13: logprob(-0.3)}],
        finish_reason="stop",
        stop_reason="```output",
    )
    completion = completion_from_vllm(output, prompt_index=4)
    assert completion.token_ids == [11, 12, 13] and completion.logprobs == [-0.1, -0.2, -0.3]
    assert (completion.prompt_index, completion.finish_reason, completion.stop_string) == (4, "stop", "```output")
    # EOS: vLLM's stop_reason is None (or the EOS id), never a string.
    eos = completion_from_vllm(SimpleNamespace(text="x", token_ids=[1], logprobs=None, finish_reason="length", stop_reason=None), 0)
    assert (eos.finish_reason, eos.stop_string, eos.logprobs) == ("length", None, [0.0])
    with pytest.raises(BackendUnavailableError, match="'abort'"):
        completion_from_vllm(SimpleNamespace(text="", token_ids=[], logprobs=None, finish_reason="abort"), 0)


def test_text_is_decoded_from_every_sampled_id_when_a_tokenizer_is_given():
    # vLLM cuts its text right after a stop string, even inside a token; HFGenerator decodes all ids.
    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens: "".join(f"<{i}>" for i in ids))
    output = SimpleNamespace(text="<1><", token_ids=[1, 2], logprobs=None, finish_reason="stop", stop_reason="<")
    assert completion_from_vllm(output, 0, tokenizer).text == "<1><2>"


def test_full_weights_use_hugging_face_names_without_the_ddp_prefix():
    wrapped = torch.nn.Module()
    wrapped.module = torch.nn.Linear(2, 3)
    names = [name for name, _ in full_weights(wrapped)]
    assert names == ["weight", "bias"]


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed (the real engine is tested in tests/with_vllm)")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match=r"make vllm-env"):
        VLLMGenerator("tiny")


@pytest.mark.parametrize(
    "overrides, dtype",
    [
        ([], "float32"),
        (["model.autocast=bfloat16"], "bfloat16"),  # fp32 master weights, bf16 compute: roll out in bf16
        (["distributed.strategy=fsdp", "distributed.param_dtype=bfloat16"], "bfloat16"),
        (["model.autocast=bfloat16", "rollout.vllm.dtype=float32"], "float32"),  # set explicitly
    ],
)
def test_the_engine_computes_in_the_trainers_dtype(overrides, dtype):
    from slowthink.config import load_config
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.recipes.rl_engine import rollout_dtype

    assert rollout_dtype(load_config(RLConfig, None, overrides)) == dtype
