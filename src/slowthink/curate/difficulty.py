"""Difficulty filter: a model's pass rate over k samples (paper section 2: "removes problems
on which QWEN-7B-INSTRUCT achieves either too high or zero pass rates").

A problem solved by every sample teaches RL nothing (all rewards equal, no advantage), nor
does one never solved; both are dropped. Works with any ``Generator`` (HF on CPU, vLLM, an
OpenAI-compatible server) and any ``Checker``; problems go through in batches, so the
pipeline stays streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slowthink.rollout.generator import Generator, SamplingParams


@dataclass(frozen=True)
class DifficultySettings:
    samples: int = 8  # k completions per problem
    temperature: float = 1.0
    max_new_tokens: int = 1024
    template: str = "chat"  # prompt template (slowthink.data.prompts)
    min_pass_rate: float = 0.0  # drop pass rate <= this (never solved)
    max_pass_rate: float = 1.0  # drop pass rate >= this (always solved)
    seed: int = 0


def pass_rates(
    generator: Generator, tokenizer: Any, checker: Any, problems: Sequence[str], answers: Sequence[str], settings: DifficultySettings
) -> list[float]:
    """Share of the k samples whose answer the checker accepts, per problem."""
    from slowthink.data.prompts import render_prompt

    prompt_ids = [tokenizer.encode(render_prompt(settings.template, p, tokenizer), add_special_tokens=False) for p in problems]
    params = SamplingParams(temperature=settings.temperature, max_new_tokens=settings.max_new_tokens, n=settings.samples, seed=settings.seed)
    completions = generator.generate(prompt_ids, params)
    golds = [answers[c.prompt_index] for c in completions]
    verdicts = checker.check(golds, [c.text for c in completions])
    solved = [0] * len(problems)
    for completion, verdict in zip(completions, verdicts):
        solved[completion.prompt_index] += verdict.correct
    return [s / settings.samples for s in solved]


def difficulty_verdict(rate: float, settings: DifficultySettings) -> str | None:
    """ "too_easy" / "too_hard" (the row goes) or None (it stays)."""
    if rate >= settings.max_pass_rate:
        return "too_easy"
    if rate <= settings.min_pass_rate:
        return "too_hard"
    return None
