"""Claim verdicts: held, reversed or inconclusive, from per-seed differences between two arms.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

For each seed s with both runs, d_s = value(arm, s) - value(than, s) (a paired difference:
the arms of a seed share the cold start and the data order, so the pair cancels most of
the seed's luck). Over the seeds, m = mean(d), sd = sample std(d). The difference *counts*
when there are at least two seeds, |m| > k * sd (k = ``spread_multiple``, 2 by default)
and |m| > ``min_effect``. Then:

- ``higher`` / ``lower``: held if it counts in the claimed direction, reversed if it counts
  in the other, inconclusive otherwise;
- ``not_higher`` / ``not_lower``: reversed if it counts in the excluded direction, held
  otherwise (with at least two seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean, stdev
from typing import Any

VERDICTS = ("held", "reversed", "inconclusive")


@dataclass(frozen=True)
class ClaimResult:
    verdict: str  # one of VERDICTS
    diffs: dict[int, float]  # seed -> value(arm) - value(than)
    mean: float
    std: float  # sample std over seeds (NaN with one seed)
    margin: float  # the threshold |mean| had to beat
    reason: str  # one sentence: why this verdict


def final_value(rows: Sequence[Mapping[str, Any]], metric: str, window: int = 1) -> float:
    """Mean of the metric's last ``window`` logged (non-null) values; NaN when never logged."""
    values = [float(r[metric]) for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    return mean(values[-window:]) if values else float("nan")


def judge(direction: str, diffs: Mapping[int, float], spread_multiple: float = 2.0, min_effect: float = 0.0) -> ClaimResult:
    """The verdict of one claim from its per-seed differences (module docstring: the rule)."""
    values = [d for d in diffs.values() if not math.isnan(d)]
    if not values:
        return ClaimResult("inconclusive", dict(diffs), float("nan"), float("nan"), float("nan"), "no seed has both runs' values")
    m = mean(values)
    sd = stdev(values) if len(values) > 1 else float("nan")
    margin = max(spread_multiple * sd, min_effect) if len(values) > 1 else float("nan")
    counts = len(values) > 1 and abs(m) > margin and abs(m) > min_effect
    sign = 1.0 if direction in ("higher", "not_higher") else -1.0
    along = counts and sign * m > 0  # a real difference in the named direction
    against = counts and sign * m < 0
    if len(values) < 2:
        verdict, reason = "inconclusive", "one seed: no spread to judge the difference against"
    elif direction in ("higher", "lower"):
        verdict = "held" if along else "reversed" if against else "inconclusive"
        reason = f"|mean| {'>' if counts else '<='} {spread_multiple:g} x seed std" + ("" if counts else ": within the seed spread")
    else:
        verdict = "reversed" if along else "held"
        reason = f"{'a' if along else 'no'} difference beyond {spread_multiple:g} x seed std in the excluded direction"
    return ClaimResult(verdict, dict(diffs), m, sd, margin, reason)
