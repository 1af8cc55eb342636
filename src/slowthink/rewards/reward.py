"""A weighted sum of named reward components, computed for a whole batch of responses.

The checker runs once per batch (one pool round trip), then every built-in component is a
pure function of that response's verdict, text and length. Reward functions of the user's
own (``reward.functions``, ``rewards/functions.py``) get the batch's prompts, completions
and data columns; a ``None`` from one adds nothing to that row's total. ``RewardModel.stream`` scores rows
in a background thread as they arrive, so a rollout engine that hands over completions as
they finish gets them checked while it decodes the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from slowthink.config import StrictConfig
from slowthink.rewards import components
from slowthink.rewards.checkers import make_checker
from slowthink.rewards.functions import RewardFunction, RewardRow, load_reward_functions, normalize_spec
from slowthink.rewards.verdict import Checker, Verdict

COMPONENTS = ("correctness", "still3", "format", "length", "action")


class RewardConfig(StrictConfig):
    """Which reward components, with which weights (section 4.2.1)."""

    checker: Literal["exact", "math"] = "math"
    """"exact": string match of the extracted answer (synthetic tasks); "math": math-verify in a worker pool."""
    weights: dict[str, float] = Field(default_factory=lambda: {"correctness": 1.0})
    """Component name -> weight. Names: correctness, still3, format, length (RRL), action (RRA), and the
    names of reward.functions."""
    functions: dict[str, str] = Field(default_factory=dict)
    """Reward functions of your own, NAME -> "path/to/file.py:function", "package.module:function" or an
    http(s) URL (a remote reward); each weighted by reward.weights.NAME, logged as reward/NAME (docs/rewards.md)."""
    function_timeout_s: float = Field(60.0, gt=0)
    """Seconds one call of a reward function (one try of a remote reward) may take before the step fails."""
    remote_retries: int = Field(3, ge=0)
    """Retries of a remote reward after a connection error, a timeout or HTTP 408/429/5xx."""
    action_max: int = 20
    """Amax of the action reward RRA."""
    check_timeout_s: float = 5.0
    """Seconds a single math check may take before its worker is killed (math checker)."""
    check_workers: int = 2
    """Worker processes of the math checker."""

    @field_validator("functions")
    @classmethod
    def _function_specs(cls, functions: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(functions) & set(COMPONENTS))
        if clash:
            raise ValueError(f"reward.functions {clash} reuse a built-in component's name; choose another")
        # Paths made absolute here, so every process (torchrun ranks, study cells) loads the same file.
        return {name: normalize_spec(spec) for name, spec in functions.items()}

    @model_validator(mode="after")
    def _known_components(self) -> RewardConfig:
        allowed = [*COMPONENTS, *self.functions]
        unknown = sorted(set(self.weights) - set(allowed))
        if unknown:
            raise ValueError(f"unknown reward component(s) {unknown}; allowed: {allowed} (add your own with reward.functions.NAME)")
        if not self.weights:
            raise ValueError("at least one reward component is needed")
        unweighted = sorted(set(self.functions) - set(self.weights))
        if unweighted:
            raise ValueError(f"reward.functions {unweighted} have no weight: set reward.weights.NAME for each")
        return self


@dataclass
class RewardBatch:
    total: list[float]
    # Per component, a value per row; None where a reward function is not applicable to the row.
    components: dict[str, list[float | None]]
    verdicts: list[Verdict]


def component_means(parts: dict[str, list[float | None]]) -> dict[str, float | None]:
    """``reward/NAME`` metrics: each component's mean over the rows it applies to (None: none)."""
    means: dict[str, float | None] = {}
    for name, values in parts.items():
        applied = [v for v in values if v is not None]
        means[f"reward/{name}"] = sum(applied) / len(applied) if applied else None
    return means


def build_checker(config: RewardConfig) -> Checker:
    """The reward's checker (never with the evaluation-only unboxed-answer fallback)."""
    return make_checker(config.checker, workers=config.check_workers, timeout_s=config.check_timeout_s)


class RewardModel:
    """Scores responses: ``score(golds, responses, lengths, max_length) -> RewardBatch``."""

    def __init__(self, config: RewardConfig, checker: Checker | None = None):
        self.config = config
        self.checker = checker if checker is not None else build_checker(config)
        # Loaded here, in every process that scores (each torchrun rank, each study cell).
        self.functions: dict[str, RewardFunction] = load_reward_functions(config.functions, config.function_timeout_s, config.remote_retries)
        # One thread runs the scoring of ``stream``s (the checker is called by one thread at a time).
        self._background: ThreadPoolExecutor | None = None

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

    def score(
        self, golds: Sequence[str], responses: Sequence[str], lengths: Sequence[int], max_length: int, rows: Sequence[RewardRow] | None = None
    ) -> RewardBatch:
        """Score a batch; ``rows`` (prompt and columns per response) feed the reward functions
        (without them a function sees only the gold answers)."""
        verdicts = self.checker.check(golds, responses)
        parts: dict[str, list[float | None]] = {}
        for name in self.config.weights:
            if name in self.functions:
                rows = rows if rows is not None else [RewardRow(str(i), "", {"answer": gold}) for i, gold in enumerate(golds)]
                parts[name] = self.functions[name](rows, responses)
            else:
                parts[name] = [self._component(name, v, text, n, max_length) for v, text, n in zip(verdicts, responses, lengths)]
        weights = self.config.weights
        total = [sum(weights[name] * values[i] for name, values in parts.items() if values[i] is not None) for i in range(len(verdicts))]
        return RewardBatch(total=total, components=parts, verdicts=verdicts)

    def stream(self, max_length: int) -> RewardStream:
        """A ``RewardStream`` for one batch of responses (call its ``result`` before the next)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(1, thread_name_prefix="slowthink-reward")
        return RewardStream(self, self._background, max_length)

    def close(self) -> None:
        if self._background is not None:
            # A check in flight ends at its deadline; queued ones are dropped.
            self._background.shutdown(wait=True, cancel_futures=True)
            self._background = None
        self.checker.close()


class RewardStream:
    """Scores one batch of responses in parts, in the background, as they come in.

    ``add(positions, golds, responses, lengths)`` queues rows (their positions in the batch)
    for the scoring thread and returns at once; ``result(golds, responses, lengths)`` scores
    the rows never added, waits, and returns the whole batch in position order. Every row
    gets exactly what ``RewardModel.score`` gives it in one call (components are per row).
    An error raised while scoring is raised by ``result``.
    """

    def __init__(self, reward_model: RewardModel, background: ThreadPoolExecutor, max_length: int):
        self.reward_model, self.background, self.max_length = reward_model, background, max_length
        self.parts: list[tuple[list[int], Future[RewardBatch]]] = []
        self.added: set[int] = set()

    def add(
        self,
        positions: Sequence[int],
        golds: Sequence[str],
        responses: Sequence[str],
        lengths: Sequence[int],
        rows: Sequence[RewardRow] | None = None,
    ) -> None:
        repeated = self.added.intersection(positions)
        if repeated or len(set(positions)) != len(positions):
            raise ValueError(f"rows {sorted(repeated) or list(positions)} were added to this reward stream twice")
        self.added.update(positions)
        future = self.background.submit(
            self.reward_model.score, list(golds), list(responses), list(lengths), self.max_length, None if rows is None else list(rows)
        )
        self.parts.append((list(positions), future))

    def result(self, golds: Sequence[str], responses: Sequence[str], lengths: Sequence[int], rows: Sequence[RewardRow] | None = None) -> RewardBatch:
        """The whole batch's scores (``golds``, ``responses``, ``lengths``, ``rows``: every row, in order)."""
        missing = [i for i in range(len(golds)) if i not in self.added]
        if missing:
            pick = None if rows is None else [rows[i] for i in missing]
            self.add(missing, [golds[i] for i in missing], [responses[i] for i in missing], [lengths[i] for i in missing], pick)
        if max(self.added, default=-1) >= len(golds):
            raise ValueError(f"reward stream has a row at position {max(self.added)} of a batch of {len(golds)}")
        total: list[float] = [0.0] * len(golds)
        verdicts: list[Verdict | None] = [None] * len(golds)
        parts: dict[str, list[float | None]] = {name: [0.0] * len(golds) for name in self.reward_model.config.weights}
        for positions, future in self.parts:
            scored = future.result()
            for j, i in enumerate(positions):
                total[i], verdicts[i] = scored.total[j], scored.verdicts[j]
                for name in parts:
                    parts[name][i] = scored.components[name][j]
        return RewardBatch(total=total, components=parts, verdicts=verdicts)
