"""Length hacking: response length keeps rising while accuracy stays flat or falls.

The paper saw it with length rewards (section 4.2.2: the RRL-style reward made responses
longer "without an accompanying performance gain") and warns of it again in its
conclusions (section 5): longer is only better when accuracy rises with it. The detector
reads the two training curves over the most recent ``window + follow`` steps:

- **length kept rising** over the first ``window`` of them: the least-squares slope of
  ``response_length``, times the window's span, is at least ``min_length_rise`` of the
  window's mean length (e.g. +20% across the window), *and* each third of the window is
  longer on average than the third before it (one spike, or one short step, does not make
  a trend);
- **accuracy did not follow** within ``follow`` more steps: the fitted rise of ``accuracy``
  over the whole span (the length window and the steps after it) is at most
  ``max_accuracy_rise`` (absolute, e.g. +0.02 = two points).

Healthy RL lengthens first and gains accuracy a few steps later: the tiny demo's responses
grow from 20 to 37 tokens over ~10 steps as it learns to think, and train accuracy rises
~5-10 steps after. Judged without ``follow``, every such run was flagged at the moment it
learned to think. So a warning comes ``follow`` steps after the rise it names.

``detect_length_hacking`` is the pure function over two series; ``LengthHackingMonitor``
keeps the series of a live run, adds the result to each step's metrics
(``length_hacking`` = 1.0 while the pattern holds) and prints a warning when it starts.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The metric keys the RL loop logs (slowthink.monitors.metrics.rollout_metrics).
LENGTH_KEY, ACCURACY_KEY = "response_length", "accuracy"
FLAG_KEY = "length_hacking"


@dataclass(frozen=True)
class HackingSettings:
    """Thresholds of the detector (defaults suit tiny runs of tens of steps)."""

    window: int = 10  # steps over which length must rise (>= 3)
    follow: int = 10  # steps after the length window that accuracy gets to catch up (0 = judge at once)
    min_length_rise: float = 0.2  # fitted length rise over the window, relative to its mean
    max_accuracy_rise: float = 0.02  # fitted accuracy rise over window + follow (absolute) still counted as "flat"

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"length-hacking window must be >= 3 steps (it is split in thirds), got {self.window}")
        if self.follow < 0:
            raise ValueError(f"length-hacking follow must be >= 0 steps, got {self.follow}")

    @property
    def span(self) -> int:
        """Steps the detector needs before it judges (it is silent until then)."""
        return self.window + self.follow


@dataclass(frozen=True)
class HackingSignal:
    """What the detector measured over one window (``hacking`` is the verdict)."""

    hacking: bool
    length_rise: float  # relative fitted rise of response length over the length window
    accuracy_rise: float  # absolute fitted rise of accuracy over the length window and the follow steps


def fitted_rise(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against their index, times the span (len - 1)."""
    n = len(values)
    if n < 2:
        return 0.0
    x_mean, y_mean = (n - 1) / 2, sum(values) / n
    num = sum((i - x_mean) * (v - y_mean) for i, v in enumerate(values))
    den = sum((i - x_mean) ** 2 for i in range(n))
    return num / den * (n - 1)


def detect_length_hacking(
    lengths: Sequence[float], accuracies: Sequence[float], settings: HackingSettings = HackingSettings()
) -> HackingSignal | None:
    """Verdict over the last ``settings.span`` points (window + follow); None while there are too few.

    ``lengths`` and ``accuracies`` are per-step means (one entry per step, oldest first);
    NaN entries (steps without the metric) are dropped pairwise.
    """
    pairs = [(length, acc) for length, acc in zip(lengths, accuracies) if not (math.isnan(length) or math.isnan(acc))][-settings.span :]
    if len(pairs) < settings.span:
        return None
    window_lengths, window_acc = [p[0] for p in pairs[: settings.window]], [p[1] for p in pairs]
    mean_length = sum(window_lengths) / len(window_lengths)
    length_rise = fitted_rise(window_lengths) / mean_length if mean_length > 0 else 0.0
    accuracy_rise = fitted_rise(window_acc)
    third = len(window_lengths) // 3
    thirds = [window_lengths[:third], window_lengths[third:-third], window_lengths[-third:]]
    means = [sum(part) / len(part) for part in thirds]
    keeps_rising = means[0] < means[1] < means[2]
    hacking = length_rise >= settings.min_length_rise and keeps_rising and accuracy_rise <= settings.max_accuracy_rise
    return HackingSignal(hacking, length_rise, accuracy_rise)


def hacking_steps(rows: Sequence[Mapping[str, Any]], settings: HackingSettings = HackingSettings()) -> list[int]:
    """Steps of a ``metrics.jsonl`` at which the detector, as it is now, fires over the logged curves.

    Reports recompute rather than read the run's own ``length_hacking`` field, which holds
    what the run's log warned at the time (the detector of the release that trained it), so
    that runs from different releases are judged by one rule.
    """
    monitor = LengthHackingMonitor(settings, echo=False)
    return [int(row["step"]) for row in rows if monitor.update(row).get(FLAG_KEY)]


def hacking_episodes(steps: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive flagged steps grouped into (first, last) spans, for reports."""
    spans: list[tuple[int, int]] = []
    for step in steps:
        if spans and step == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], step)
        else:
            spans.append((step, step))
    return spans


@dataclass
class LengthHackingMonitor:
    """The detector over a live run: feed each step's metrics, get the fields to log.

    ``update`` returns ``{"length_hacking": 0.0 or 1.0, "length_hacking/length_rise": ...,
    "length_hacking/accuracy_rise": ...}`` (empty until ``settings.span`` steps) and prints one
    warning line when an episode starts: after a full window without a flagged step (a
    noisy series flickering around the thresholds would otherwise flood the log).
    """

    settings: HackingSettings = HackingSettings()
    echo: bool = True
    lengths: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    last_flagged: int | None = None  # index in the series of the last flagged step

    @classmethod
    def for_run(cls, run_dir: str | Path, up_to_step: int, echo: bool = True) -> LengthHackingMonitor:
        """A monitor primed with a resumed run's logged steps (so its window survives a restart)."""
        from slowthink.tracking import read_metrics

        monitor = cls(echo=echo)
        path = Path(run_dir) / "metrics.jsonl"
        if up_to_step > 0 and path.is_file():
            rows = [r for r in read_metrics(path) if r.get("step", 0) <= up_to_step and LENGTH_KEY in r]
            for row in rows:
                monitor._append(row)
            # The log before the restart already showed the ongoing episode's warning.
            flagged = [i for i, row in enumerate(rows) if row.get(FLAG_KEY)]
            monitor.last_flagged = flagged[-1] if flagged else None
        return monitor

    def _append(self, metrics: Mapping[str, Any]) -> None:
        self.lengths.append(_number(metrics.get(LENGTH_KEY)))
        self.accuracies.append(_number(metrics.get(ACCURACY_KEY)))

    def update(self, metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
        if LENGTH_KEY not in metrics:
            return {}
        self._append(metrics)
        signal = detect_length_hacking(self.lengths, self.accuracies, self.settings)
        if signal is None:
            return {}
        now = len(self.lengths) - 1
        quiet_long_enough = self.last_flagged is None or now - self.last_flagged >= self.settings.window
        if signal.hacking and quiet_long_enough and self.echo:  # a new episode
            where = f"step {step}: " if step is not None else ""
            print(
                f"[rl] WARNING {where}possible length hacking: response length +{100 * signal.length_rise:.0f}% over "
                f"{self.settings.window} steps, and train accuracy changed {signal.accuracy_rise:+.3f} over those and the "
                f"{self.settings.follow} steps since (paper sections 4.2.2, 5)",
                file=sys.stderr,
                flush=True,
            )
        if signal.hacking:
            self.last_flagged = now
        return {FLAG_KEY: float(signal.hacking), f"{FLAG_KEY}/length_rise": signal.length_rise, f"{FLAG_KEY}/accuracy_rise": signal.accuracy_rise}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")
