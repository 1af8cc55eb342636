"""Shared pieces of the vLLM tests: the skip when vLLM is absent, and the engine-vs-trainer check."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


def require_vllm() -> None:
    """Skip the calling test module when vLLM cannot be imported, saying why.

    (This folder is not named ``tests/vllm``: pytest puts ``tests/`` on sys.path, where a
    ``vllm`` folder would import as an empty namespace package wherever vLLM is absent.)

    ``make test-vllm`` sets SLOWTHINK_VLLM_UNAVAILABLE when it could not build .venv-vllm,
    so the skip carries the install's own error rather than a bare ImportError.
    """
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        reason = os.environ.get("SLOWTHINK_VLLM_UNAVAILABLE") or f"vLLM is not importable here ({exc}); run `make test-vllm`"
        pytest.skip(reason, allow_module_level=True)


# Greedy log-probs of the engine and of the trainer's module (both float32 on CPU) agree to
# rounding; a weight change of the size one optimizer step makes moves them by far more.
LOGPROB_TOLERANCE = 1e-4
# Chat-formatted prompts of the tiny task.
PROMPTS = ["12+34", "999+1", "5+7+9", "310+427+88"]
# Small engines: a short context (no torch.compile on CPU by default: they start in seconds).
ENGINE_OVERRIDES = ["rollout.vllm.max_model_len=256"]


def prompt_ids(tokenizer) -> list[list[int]]:
    return [tokenizer.encode(f"<|user|>{p}<|assistant|>") for p in PROMPTS]


@dataclass
class Agreement:
    """How a vLLM engine's greedy rollouts compare with HFGenerator's on the trainer's module."""

    same_tokens: bool
    max_logprob_diff: float
    engine_logprobs: list[list[float]]


def compare_with_trainer(generator, model, tokenizer, max_new_tokens: int = 12, stop: tuple[str, ...] = ()) -> Agreement:
    from slowthink.rollout.generator import SamplingParams
    from slowthink.rollout.hf import HFGenerator

    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, stop=stop)
    prompts = prompt_ids(tokenizer)
    ours = generator.generate(prompts, params)
    theirs = HFGenerator(model, tokenizer).generate(prompts, params)
    same = [(c.token_ids, c.text, c.finish_reason) for c in ours] == [(c.token_ids, c.text, c.finish_reason) for c in theirs]
    diff = max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x.logprobs, y.logprobs))
    return Agreement(same, diff, [c.logprobs for c in ours])
