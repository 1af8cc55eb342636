"""The vLLM backend's mappings, tested without vLLM; a real run only where vLLM is installed."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.vllm_backend import (
    BackendUnavailableError,
    VLLMGenerator,
    _engine_model,
    completion_from_vllm,
    vllm_sampling_kwargs,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_sampling_params_map_onto_vllm_kwargs():
    params = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=32768, stop=("```output",), n=8, seed=5)
    assert vllm_sampling_kwargs(params) == {
        "n": 8, "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "stop": ["```output"],
        "include_stop_str_in_output": True, "logprobs": 0, "seed": 5, "skip_special_tokens": True,
    }
    greedy = vllm_sampling_kwargs(SamplingParams(temperature=0.0, max_new_tokens=4))
    assert (greedy["temperature"], greedy["stop"], greedy["n"]) == (0.0, None, 1)


def test_completion_output_becomes_a_completion():
    logprob = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    output = SimpleNamespace(index=0, text="ab```output", token_ids=(11, 12, 13),
                             logprobs=[{11: logprob(-0.1), 99: logprob(-3.0)}, {12: logprob(-0.2)}, {13: logprob(-0.3)}],
                             finish_reason="stop", stop_reason="```output")
    completion = completion_from_vllm(output, prompt_index=4)
    assert completion.token_ids == [11, 12, 13] and completion.logprobs == [-0.1, -0.2, -0.3]
    assert (completion.prompt_index, completion.finish_reason, completion.stop_string) == (4, "stop", "```output")
    # EOS: vLLM's stop_reason is None (or the EOS id), never a string.
    eos = completion_from_vllm(SimpleNamespace(text="x", token_ids=[1], logprobs=None, finish_reason="length",
                                               stop_reason=None), 0)
    assert (eos.finish_reason, eos.stop_string, eos.logprobs) == ("length", None, [0.0])
    with pytest.raises(BackendUnavailableError, match="'abort'"):
        completion_from_vllm(SimpleNamespace(text="", token_ids=[], logprobs=None, finish_reason="abort"), 0)


def test_engine_model_is_found_on_either_path_or_explained():
    model = object()
    v1 = SimpleNamespace(llm_engine=SimpleNamespace(model_executor=SimpleNamespace(
        driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=SimpleNamespace(model=model))))))
    v0 = SimpleNamespace(llm_engine=SimpleNamespace(model_executor=SimpleNamespace(
        driver_worker=SimpleNamespace(model_runner=SimpleNamespace(model=model)))))
    assert _engine_model(v1) is model and _engine_model(v0) is model
    with pytest.raises(BackendUnavailableError, match="VLLM_ENABLE_V1_MULTIPROCESSING=0"):
        _engine_model(SimpleNamespace(llm_engine=SimpleNamespace()))


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_is_a_clear_error():
    with pytest.raises(BackendUnavailableError, match=r"pip install 'slowthink\[vllm\]'"):
        VLLMGenerator("tiny")


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (GPU machines only)")
def test_real_vllm_generates_greedy_like_the_sampling_contract():
    gen = VLLMGenerator("tiny", gpu_memory_utilization=0.3, enable_weight_sync=True)
    (completion,) = gen.generate([[5, 6, 7]], SamplingParams(temperature=0.0, max_new_tokens=4))
    assert 1 <= len(completion.token_ids) <= 4 and len(completion.logprobs) == len(completion.token_ids)
