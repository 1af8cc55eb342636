"""A weighted sum of named reward components, computed for a whole batch of responses.

Must not import torch, transformers, modeling, rollout, training, recipes or the CLI (tests/test_layers.py).

The checker runs once per batch (one pool round trip), then every component is a pure
function of that response's verdict, text and length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from slowthink.config import StrictConfig
from slowthink.rewards import components
from slowthink.rewards.checkers import make_checker
from slowthink.rewards.verdict import Checker, Verdict

COMPONENTS = ("correctness", "still3", "format", "length", "action")


class RewardConfig(StrictConfig):
    """Which reward components, with which weights (section 4.2.1)."""

    # "exact": string match of the extracted answer (synthetic tasks); "math": math-verify in a worker pool.
    checker: Literal["exact", "math"] = "math"
    # Component name -> weight. Names: correctness, still3, format, length (RRL), action (RRA).
    weights: dict[str, float] = Field(default_factory=lambda: {"correctness": 1.0})
    # Amax of the action reward RRA.
    action_max: int = 20
    # Seconds a single math check may take before its worker is killed (math checker).
    check_timeout_s: float = 5.0
    # Worker processes of the math checker.
    check_workers: int = 2

    @field_validator("weights")
    @classmethod
    def _known_components(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown reward component(s) {unknown}; allowed: {list(COMPONENTS)}")
        if not weights:
            raise ValueError("at least one reward component is needed")
        return weights


@dataclass
class RewardBatch:
    total: list[float]
    components: dict[str, list[float]]
    verdicts: list[Verdict]


def build_checker(config: RewardConfig) -> Checker:
    """The reward's checker (never with the evaluation-only unboxed-answer fallback)."""
    return make_checker(config.checker, workers=config.check_workers, timeout_s=config.check_timeout_s)


class RewardModel:
    """Scores responses: ``score(golds, responses, lengths, max_length) -> RewardBatch``."""

    def __init__(self, config: RewardConfig, checker: Checker | None = None):
        self.config = config
        self.checker = checker if checker is not None else build_checker(config)

    def _component(self, name: str, verdict: Verdict, text: str, length: int, max_length: int) -> float:
        if name == "correctness":
            return components.correctness_reward(verdict)
        if name == "still3":
            return components.still3_reward(verdict)
        if name == "format":
            return components.format_reward(text)
        if name == "length":
            return components.length_reward(verdict, length, max_length)
        return components.action_reward(verdict, text, self.config.action_max)

    def score(self, golds: Sequence[str], responses: Sequence[str], lengths: Sequence[int], max_length: int) -> RewardBatch:
        verdicts = self.checker.check(golds, responses)
        parts = {
            name: [self._component(name, v, text, n, max_length) for v, text, n in zip(verdicts, responses, lengths)] for name in self.config.weights
        }
        total = [sum(self.config.weights[name] * parts[name][i] for name in parts) for i in range(len(verdicts))]
        return RewardBatch(total=total, components=parts, verdicts=verdicts)

    def close(self) -> None:
        self.checker.close()
