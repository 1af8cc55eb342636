"""Claim verdicts: held, reversed or inconclusive, with stated error rates (docs/study.md).

For each seed s with both runs, d_s = value(arm, s) - value(than, s): a paired difference
(the arms of a seed share the cold start and the data order, so the pair cancels most of
the seed's luck). Over the n seeds, m = mean(d), sd = sample std(d), se = sd / sqrt(n), and
the interval is m -+ t(1 - alpha/2, n - 1) * se at the stated level (1 - alpha, 95% by
default). Every claim has a ``min_effect`` > 0 in the metric's units: with quantized
metrics the seed spread can be 0, and then any difference at all would otherwise count.
The spread is floored by measurement (each difference is known no better than its two
values' standard errors), and a not_* claim is never held on an interval of no width.

- ``higher`` / ``lower``: held when the interval lies wholly on the claimed side of 0 and
  |m| >= min_effect; reversed when it lies wholly on the other side (and |m| >= min_effect);
  inconclusive otherwise. The p-value is the paired t-test's, two-sided.
- ``not_higher`` / ``not_lower``: a non-inferiority test (TOST's one side) against an
  explicit ``margin`` > 0: held when the interval's bound on the excluded side clears the
  margin (for not_higher: upper bound < margin); reversed when the interval lies wholly in
  the excluded direction beyond 0 and |m| >= min_effect (the effect is shown); else
  inconclusive. Absence of evidence is never "held". p = min(held p, reversed p), both
  two-sided, and the verdict is the side with the smaller p.

Across a grid's claims the p-values are adjusted by Holm's step-down method: a claim is a
finding (held or reversed) only when its adjusted p < alpha, so the chance of any false
finding in the grid stays <= alpha. Every figure is vectorized over studies (rows of
``diffs_SN``: S studies, N seeds), so the tests simulate thousands of studies with the very
code that judges the real one.

Power: the minimum detectable effect at the observed spread, (t(1 - alpha/2) + t(power))
* sd / sqrt(n) (80% power by default), and the seeds an effect (the claim's ``effect``, else
its margin or min_effect) would need at that spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean, stdev
from typing import Any

import numpy as np
from scipy import stats

VERDICTS = ("held", "reversed", "inconclusive")
DIRECTIONS = ("higher", "lower", "not_higher", "not_lower")
# The seeds the power analysis stops counting at ("more than 1000").
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Rule:
    """What a claim is judged with: its direction, thresholds and the stated level."""

    direction: str  # higher, lower, not_higher, not_lower
    min_effect: float  # > 0, in the metric's units
    margin: float | None = None  # > 0; needed by not_higher / not_lower
    level: float = 0.95  # of each interval; alpha = 1 - level
    power: float = 0.8  # for the minimum detectable effect and the seeds needed
    effect: float | None = None  # the effect the seeds figure is sized for (default: margin, else min_effect)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if not self.min_effect > 0:
            raise ValueError(f"min_effect must be > 0 (a zero seed spread would make any difference count), got {self.min_effect}")
        if self.direction.startswith("not_") and not (self.margin is not None and self.margin > 0):
            raise ValueError(f"a {self.direction} claim needs an explicit margin > 0 (the difference that would count), got {self.margin}")
        if not 0.5 < self.level < 1 or not 0 < self.power < 1:
            raise ValueError(f"need 0.5 < level < 1 and 0 < power < 1, got level={self.level}, power={self.power}")

    @property
    def alpha(self) -> float:
        return 1.0 - self.level

    @property
    def sign(self) -> float:
        """+1 when the claim is about the arm being higher (or not higher), -1 for lower."""
        return 1.0 if self.direction in ("higher", "not_higher") else -1.0

    @property
    def target_effect(self) -> float:
        return self.effect if self.effect is not None else self.margin if self.margin is not None else self.min_effect


@dataclass(frozen=True)
class Evidence:
    """Per-study statistics of the paired differences, all arrays of shape (S,)."""

    mean: np.ndarray
    sd: np.ndarray
    n: int
    low: np.ndarray  # the interval at the rule's level
    high: np.ndarray
    p: np.ndarray  # raw p-value of the claim's finding (1 where none is possible)
    candidate: np.ndarray  # verdict index the finding would give (0 held, 1 reversed)
    large_enough: np.ndarray  # bool: |mean| reaches min_effect in the candidate's direction (or a held not_* claim)


def _t_p_two_sided(stat: np.ndarray, df: int) -> np.ndarray:
    """Two-sided p of a t statistic; an infinite statistic (zero spread) gives 0, NaN (0/0) gives 1."""
    p = 2.0 * stats.t.sf(np.abs(stat), df)
    return np.where(np.isnan(stat), 1.0, p)


def evidence(diffs_SN: np.ndarray, rule: Rule, noise_S: np.ndarray | float = 0.0) -> Evidence:
    """The interval, p-value and candidate verdict of every study (row) of paired differences.

    ``noise_S``: the spread one difference has from measurement alone (from each value's
    standard error), a floor under the observed spread: quantized values that agree on every
    seed do not make a zero-width interval when each was measured with an error."""
    diffs_SN = np.atleast_2d(np.asarray(diffs_SN, dtype=float))
    n = diffs_SN.shape[1]
    if n < 2:
        raise ValueError("the rule needs at least two seeds with both runs")
    m = diffs_SN.mean(axis=1)
    sd = np.maximum(diffs_SN.std(axis=1, ddof=1), noise_S)
    se = sd / math.sqrt(n)
    half = stats.t.ppf(1.0 - rule.alpha / 2.0, n - 1) * se
    x = rule.sign * m  # the difference measured in the claim's direction
    with np.errstate(divide="ignore", invalid="ignore"):
        p_zero = _t_p_two_sided(m / se, n - 1)  # against "no difference"
        if rule.direction.startswith("not_"):
            # Held side: H0 "x >= margin", one-sided, doubled so that it matches the interval.
            stat_margin = (x - rule.margin) / se
            p_held = np.minimum(1.0, 2.0 * np.where(np.isnan(stat_margin), 1.0, stats.t.cdf(stat_margin, n - 1)))
            p_reversed = np.where(x > 0, p_zero, 1.0)
            candidate = np.where(p_held <= p_reversed, 0, 1)
            p = np.minimum(p_held, p_reversed)
            # Held needs an interval with width: a spread of exactly 0 (nothing measured to vary,
            # e.g. every run at accuracy 0) says nothing about how far the arms could differ.
            large = ((candidate == 0) & (sd > 0)) | ((candidate == 1) & (x >= rule.min_effect))
        else:
            p = p_zero
            candidate = np.where(x > 0, 0, 1)
            large = np.abs(m) >= rule.min_effect
    return Evidence(m, sd, n, m - half, m + half, p, candidate, large)


def holm_adjust(p_SK: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values over the K claims of each study (row)."""
    p_SK = np.atleast_2d(np.asarray(p_SK, dtype=float))
    k = p_SK.shape[1]
    order = np.argsort(p_SK, axis=1, kind="stable")
    ranked = np.take_along_axis(p_SK, order, axis=1) * (k - np.arange(k))
    ranked = np.minimum(1.0, np.maximum.accumulate(ranked, axis=1))
    adjusted = np.empty_like(ranked)
    np.put_along_axis(adjusted, order, ranked, axis=1)
    return adjusted


def verdict_codes(ev: Evidence, p_adjusted: np.ndarray, rule: Rule) -> np.ndarray:
    """(S,) verdict index into VERDICTS: a finding needs adjusted p < alpha and the effect's size."""
    finding = (p_adjusted < rule.alpha) & ev.large_enough
    return np.where(finding, ev.candidate, 2)


def minimum_detectable_effect(sd: float, n: int, level: float = 0.95, power: float = 0.8) -> float:
    """The paired difference detected with ``power`` by n seeds at spread ``sd`` (t approximation)."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    return (stats.t.ppf(1.0 - (1.0 - level) / 2.0, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)


def seeds_needed(sd: float, effect: float, level: float = 0.95, power: float = 0.8) -> int | None:
    """The fewest seeds whose minimum detectable effect at spread ``sd`` is <= ``effect``
    (None: more than MAX_SEEDS, or no spread measured)."""
    if not math.isfinite(sd) or effect <= 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        if minimum_detectable_effect(sd, n, level, power) <= effect:
            return n
    return None


@dataclass(frozen=True)
class ClaimResult:
    verdict: str  # one of VERDICTS
    diffs: dict[int, float]  # seed -> value(arm) - value(than)
    mean: float
    std: float  # the spread the interval used: the seeds' sample std, floored by the measurement noise (NaN with one seed)
    low: float  # the interval at the rule's level
    high: float
    p: float  # raw p-value
    p_adjusted: float  # Holm-adjusted over the grid's claims
    mde: float  # minimum detectable effect at the observed spread, with these seeds
    seeds_needed: int | None  # for the rule's target effect at the observed spread
    rule: Rule
    reason: str  # one sentence: why this verdict


@dataclass(frozen=True)
class _Prepared:
    values: np.ndarray  # the non-NaN differences
    noise: float  # the spread of one difference from its values' standard errors (0: unknown)
    ev: Evidence | None  # None with fewer than two seeds


def _prepare(diffs: Mapping[int, float], rule: Rule, errors: Mapping[int, float] | None) -> _Prepared:
    """``errors``: seed -> standard error of that seed's difference (NaN or absent: unknown)."""
    values = np.array([d for d in diffs.values() if not math.isnan(d)], dtype=float)
    known = [e for seed, e in (errors or {}).items() if not math.isnan(e) and not math.isnan(diffs.get(seed, math.nan))]
    noise = math.sqrt(sum(e * e for e in known) / len(known)) if known else 0.0
    return _Prepared(values, noise, evidence(values[None, :], rule, noise) if len(values) >= 2 else None)


def judge_claims(claims: Sequence[tuple], adjust: bool = True, units=None) -> list[ClaimResult]:
    """Verdicts of a grid's claims, Holm-adjusted together (``adjust=False``: each on its own).

    Each claim is ``(rule, diffs)`` or ``(rule, diffs, errors)``: seed -> difference, and
    seed -> that difference's standard error (from its two values'), when known.
    ``units(rule, value) -> str`` formats an effect in the reason (default: the bare number)."""
    units = units or (lambda rule, value: f"{value:.3g}")
    prepared = [_prepare(claim[1], claim[0], claim[2] if len(claim) > 2 else None) for claim in claims]
    raw = np.array([float(p.ev.p[0]) if p.ev is not None else 1.0 for p in prepared])
    adjusted = holm_adjust(raw[None, :])[0] if adjust and len(raw) else raw
    results = []
    for claim, prep, p_raw, p_adj in zip(claims, prepared, raw, adjusted):
        results.append(_result(claim[0], dict(claim[1]), prep, float(p_raw), float(p_adj), units))
    return results


def judge(direction: str, diffs: Mapping[int, float], min_effect: float, margin: float | None = None, level: float = 0.95) -> ClaimResult:
    """One claim on its own (no adjustment across claims)."""
    return judge_claims([(Rule(direction, min_effect, margin, level), diffs)], adjust=False)[0]


def _result(rule: Rule, diffs: dict[int, float], prep: _Prepared, p_raw: float, p_adj: float, units) -> ClaimResult:
    nan = float("nan")
    if prep.ev is None:
        reason = "no seed has both runs' values" if len(prep.values) == 0 else "one seed: no spread to judge the difference against"
        return ClaimResult(
            "inconclusive", diffs, float(prep.values.mean()) if len(prep.values) else nan, nan, nan, nan, nan, nan, nan, None, rule, reason
        )
    ev = prep.ev
    verdict = VERDICTS[int(verdict_codes(ev, np.array([p_adj]), rule)[0])]
    sd, n = float(ev.sd[0]), ev.n  # the spread the interval used (observed, floored by measurement noise)
    mde = minimum_detectable_effect(sd, n, rule.level, rule.power)
    needed = seeds_needed(sd, rule.target_effect, rule.level, rule.power)
    result = ClaimResult(verdict, diffs, float(ev.mean[0]), sd, float(ev.low[0]), float(ev.high[0]), p_raw, p_adj, mde, needed, rule, "")
    return ClaimResult(**{**result.__dict__, "reason": explain(result, units)})


def explain(result: ClaimResult, units) -> str:
    """The verdict's reason in words, with the power figures."""
    rule = result.rule
    where = f"{rule_level(rule)} interval [{result.low:.3g}, {result.high:.3g}]"
    if result.verdict == "held" and rule.direction.startswith("not_"):
        return f"{where} clears the margin {units(rule, rule.margin)}; adjusted p {result.p_adjusted:.3g}"
    if result.verdict != "inconclusive":
        return f"{where} excludes 0, effect {units(rule, abs(result.mean))} >= {units(rule, rule.min_effect)}; adjusted p {result.p_adjusted:.3g}"
    n = len([d for d in result.diffs.values() if not math.isnan(d)])
    if result.std == 0 and rule.direction.startswith("not_"):
        return "no spread measured (the same difference on every seed, no value with an error): an interval of no width decides nothing"
    if result.p_adjusted < rule.alpha:
        why = f"the effect {units(rule, abs(result.mean))} is below min_effect {units(rule, rule.min_effect)}"
    elif result.p < rule.alpha:
        why = f"p {result.p:.3g} alone, {result.p_adjusted:.3g} after Holm across the grid's claims"
    else:
        why = f"the {rule_level(rule)} interval [{result.low:.3g}, {result.high:.3g}] does not decide"
    needed = f"about {result.seeds_needed}" if result.seeds_needed is not None else f"more than {MAX_SEEDS}"
    return (
        f"{why}: {units(rule, result.mde)} detectable with {n} seeds; "
        f"{'a margin' if rule.direction.startswith('not_') and rule.effect is None else 'an effect'} of {units(rule, rule.target_effect)} would need {needed}"
    )


def rule_level(rule: Rule) -> str:
    return f"{rule.level * 100:g}%"


def final_value(rows: Sequence[Mapping[str, Any]], metric: str, window: int = 1) -> float:
    """Mean of the metric's last ``window`` logged (non-null) values; NaN when never logged."""
    return value_and_se(rows, metric, window)[0]


def value_and_se(rows: Sequence[Mapping[str, Any]], metric: str, window: int = 1) -> tuple[float, float]:
    """(mean of the last ``window`` logged values, its standard error).

    The error of a plateau of k >= 2 values is their std / sqrt(k). A single held-out
    accuracy gets its binomial error sqrt(p (1 - p) / N) when the run logged how many
    problems it was on (``heldout/num_problems``); otherwise a single value has none (NaN)."""
    logged = [r for r in rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    last = logged[-window:]
    if not last:
        return float("nan"), float("nan")
    values = [float(r[metric]) for r in last]
    if len(values) > 1:
        return mean(values), stdev(values) / math.sqrt(len(values))
    count = last[0].get(metric.rsplit("/", 1)[0] + "/num_problems") if "/" in metric and metric.endswith("accuracy") else None
    p = values[0]
    if isinstance(count, (int, float)) and count > 0 and 0 <= p <= 1:
        return p, math.sqrt(p * (1 - p) / count)
    return p, float("nan")
