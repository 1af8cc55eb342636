"""The verdict rule: hand-computed cases, then its error rates on simulated studies.

The simulations run the very functions that judge a real grid (``evidence``,
``holm_adjust``, ``verdict_codes``), vectorized over thousands of seeded synthetic studies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from slowthink.study.verdict import (
    Rule,
    evidence,
    final_value,
    holm_adjust,
    judge,
    judge_claims,
    minimum_detectable_effect,
    seeds_needed,
    value_and_se,
    verdict_codes,
)

HELD, REVERSED, INCONCLUSIVE = 0, 1, 2
STUDIES = 4000
# Monte-Carlo slack: three standard errors of a rate near 5% over STUDIES studies.
SLACK = 3 * math.sqrt(0.05 * 0.95 / STUDIES)


def simulate(rule: Rule, true_difference: float, spread: float, seeds: int, studies: int = STUDIES, seed: int = 0) -> np.ndarray:
    """Verdict codes of ``studies`` synthetic studies of one claim (no adjustment)."""
    diffs = np.random.default_rng(seed).normal(true_difference, spread, size=(studies, seeds))
    ev = evidence(diffs, rule)
    return verdict_codes(ev, ev.p, rule)


def test_directional_interval_by_hand():
    # d = 0.09, 0.10, 0.11: mean 0.1, sd 0.01, se 0.01/sqrt(3); t(0.975, 2) = 4.303.
    held = judge("higher", {0: 0.09, 1: 0.10, 2: 0.11}, min_effect=0.02)
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert held.verdict == "held" and held.mean == pytest.approx(0.1) and held.std == pytest.approx(0.01)
    assert (held.low, held.high) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert held.p == pytest.approx(2 * stats.t.sf(0.1 / (0.01 / math.sqrt(3)), 2))
    assert judge("higher", {0: -0.09, 1: -0.10, 2: -0.11}, min_effect=0.02).verdict == "reversed"
    assert judge("lower", {0: -0.09, 1: -0.10, 2: -0.11}, min_effect=0.02).verdict == "held"
    # mean 0.1, sd 0.1: the interval [-0.15, 0.35] straddles 0.
    assert judge("higher", {0: 0.0, 1: 0.1, 2: 0.2}, min_effect=0.02).verdict == "inconclusive"


def test_the_old_rule_s_finding_at_alpha_0074_is_inconclusive_now():
    # |mean| = 2.1 sd over 3 seeds counted under "|mean| > 2 x std"; t = 2.1 sqrt(3) = 3.64, p = 0.068.
    result = judge("higher", {0: 0.011, 1: 0.021, 2: 0.031}, min_effect=0.01)  # mean 0.021, sd 0.01
    values = list(result.diffs.values())
    assert np.mean(values) > 2 * np.std(values, ddof=1) and result.verdict == "inconclusive"


def test_zero_spread_needs_min_effect():
    # Quantized accuracies can agree on every seed: the spread is 0, the t statistic infinite.
    assert judge("higher", {0: 0.005, 1: 0.005, 2: 0.005}, min_effect=0.01).verdict == "inconclusive"
    assert judge("higher", {0: 0.02, 1: 0.02, 2: 0.02}, min_effect=0.01).verdict == "held"
    assert judge("higher", {0: 0.0, 1: 0.0, 2: 0.0}, min_effect=0.01).verdict == "inconclusive"
    with pytest.raises(ValueError, match="min_effect must be > 0"):
        Rule("higher", min_effect=0.0)


def test_not_higher_is_a_non_inferiority_test_against_the_margin():
    with pytest.raises(ValueError, match="explicit margin"):
        Rule("not_higher", min_effect=0.01)
    # Tight and well below the margin: held. Upper bound = -0.3 + 4.303 * 0.01 / sqrt(3) < 0.03.
    assert judge("not_higher", {0: -0.3, 1: -0.31, 2: -0.29}, 0.01, margin=0.03).verdict == "held"
    # Tight, near 0, inside the margin: held.
    assert judge("not_higher", {0: 0.0, 1: 0.005, 2: -0.005}, 0.01, margin=0.03).verdict == "held"
    # Clearly higher: reversed (and not_lower of a clear drop).
    assert judge("not_higher", {0: 0.3, 1: 0.31, 2: 0.29}, 0.01, margin=0.03).verdict == "reversed"
    assert judge("not_lower", {0: -0.3, 1: -0.31, 2: -0.29}, 0.01, margin=0.03).verdict == "reversed"
    # Near 0 but wide: absence of evidence is inconclusive, not held.
    assert judge("not_higher", {0: 0.0, 1: 0.1, 2: -0.1}, 0.01, margin=0.03).verdict == "inconclusive"


def test_the_two_shipped_not_higher_verdicts_are_inconclusive():
    """The old report called both "held"; their intervals reach far past a 3-point margin."""
    entropy = judge("not_higher", {0: -0.02, 1: 0.015, 2: -0.06}, min_effect=0.01, margin=0.03)
    rrl = judge("not_higher", {0: -0.08, 1: 0.03, 2: -0.03}, min_effect=0.01, margin=0.03)
    for result in (entropy, rrl):
        assert result.verdict == "inconclusive" and result.high > 0.03
        # The power figures say what it would take: more than 3 seeds for a 3-point margin.
        assert result.mde > 0.03 and result.seeds_needed > 3
        assert "detectable with 3 seeds" in result.reason and f"would need about {result.seeds_needed}" in result.reason


def test_power_figures_by_hand():
    sd, n = 0.04, 3
    expected = (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * sd / math.sqrt(3)
    assert minimum_detectable_effect(sd, n) == pytest.approx(expected)
    needed = seeds_needed(sd, 0.02)
    assert minimum_detectable_effect(sd, needed) <= 0.02 < minimum_detectable_effect(sd, needed - 1)
    assert seeds_needed(0.0, 0.02) == 2 and seeds_needed(1.0, 1e-6) is None


def test_holm_adjustment_by_hand():
    # Sorted 0.01, 0.02, 0.04 over k = 3: 0.03, max(0.03, 0.04) = 0.04, max(0.04, 0.04) = 0.04.
    adjusted = holm_adjust(np.array([[0.04, 0.01, 0.02]]))[0]
    assert adjusted == pytest.approx([0.04, 0.03, 0.04])
    # Monotone: a larger raw p never gets a smaller adjusted one (0.5 x 2 = 1 caps 0.9 too).
    assert holm_adjust(np.array([[0.5, 0.9]]))[0] == pytest.approx([1.0, 1.0])
    # In a grid, a claim that is a finding alone can stop being one after the adjustment.
    claim = (Rule("higher", 0.01), {0: 0.05, 1: 0.06, 2: 0.08})
    nulls = [(Rule("higher", 0.01), {0: -0.1, 1: 0.1, 2: 0.0})] * 10
    alone = judge_claims([claim], adjust=True)[0]
    together = judge_claims([claim, *nulls], adjust=True)[0]
    assert alone.verdict == "held" and together.verdict == "inconclusive"
    assert together.p == alone.p and together.p_adjusted > alone.p_adjusted
    assert "after Holm" in together.reason


@pytest.mark.parametrize("seeds", [3, 5])
def test_no_effect_false_findings_stay_at_the_stated_level(seeds):
    rule = Rule("higher", min_effect=1e-9)  # min_effect only lowers the rate: test the interval alone
    codes = simulate(rule, true_difference=0.0, spread=0.05, seeds=seeds)
    false_findings = np.mean(codes != INCONCLUSIVE)
    assert false_findings <= rule.alpha + SLACK
    # The old rule (|mean| > 2 std) said held or reversed at 7.4% with 3 seeds; the new one is at 5%.
    assert false_findings > rule.alpha - 3 * SLACK


def test_not_higher_error_rates():
    rule = Rule("not_higher", min_effect=1e-9, margin=0.03)
    # Truly higher by exactly the margin: "held" would be false; at most alpha / 2 (one side of the interval).
    assert np.mean(simulate(rule, 0.03, 0.02, seeds=3) == HELD) <= rule.alpha / 2 + SLACK
    # Truly equal: "reversed" would be false.
    assert np.mean(simulate(rule, 0.0, 0.02, seeds=3) == REVERSED) <= rule.alpha / 2 + SLACK
    # Truly higher by 3 points with a wide spread: the old rule said held 85% of the time.
    assert np.mean(simulate(rule, 0.03, 0.05, seeds=3) == HELD) <= rule.alpha / 2 + SLACK


def test_a_grid_of_eleven_null_claims_keeps_the_family_wise_rate():
    rule = Rule("higher", min_effect=1e-9)
    diffs = np.random.default_rng(1).normal(0.0, 0.05, size=(11, STUDIES, 3))
    evs = [evidence(diffs[k], rule) for k in range(11)]
    adjusted = holm_adjust(np.stack([ev.p for ev in evs], axis=1))
    any_false = np.zeros(STUDIES, dtype=bool)
    unadjusted_any = np.zeros(STUDIES, dtype=bool)
    for k, ev in enumerate(evs):
        any_false |= verdict_codes(ev, adjusted[:, k], rule) != INCONCLUSIVE
        unadjusted_any |= verdict_codes(ev, ev.p, rule) != INCONCLUSIVE
    assert np.mean(any_false) <= rule.alpha + SLACK
    assert np.mean(unadjusted_any) > 0.3  # without the adjustment: 1 - 0.95^11 = 43%


@pytest.mark.parametrize("seeds", [3, 5])
def test_an_effect_twice_the_detectable_one_is_held(seeds):
    spread = 0.05
    rule = Rule("higher", min_effect=0.01)
    effect = 2 * minimum_detectable_effect(spread, seeds)
    assert np.mean(simulate(rule, effect, spread, seeds) == HELD) >= 0.8
    # And a not_higher claim whose margin is twice the detectable effect is held when it is true.
    equal = Rule("not_higher", min_effect=0.01, margin=effect)
    assert np.mean(simulate(equal, 0.0, spread, seeds) == HELD) >= 0.8


def test_value_is_the_mean_of_the_last_logged_values_with_its_error():
    rows = [{"step": 1, "a": 1.0}, {"step": 2}, {"step": 3, "a": None}, {"step": 4, "a": 3.0}, {"step": 5, "a": 5.0}]
    assert final_value(rows, "a") == 5.0
    assert value_and_se(rows, "a", window=2) == (4.0, pytest.approx(math.sqrt(2) / math.sqrt(2)))
    assert math.isnan(value_and_se(rows, "a", window=1)[1])
    assert math.isnan(final_value(rows, "b"))
    # One held-out evaluation: its binomial error, from the problems it was on.
    single = [{"step": 10, "heldout/accuracy": 0.7, "heldout/num_problems": 1000.0}]
    assert value_and_se(single, "heldout/accuracy", window=3) == (0.7, pytest.approx(math.sqrt(0.7 * 0.3 / 1000)))


def test_one_seed_or_missing_values_are_inconclusive():
    assert judge("higher", {0: 0.5}, 0.01).verdict == "inconclusive"
    assert judge("not_higher", {0: 0.5}, 0.01, margin=0.03).verdict == "inconclusive"
    assert judge("higher", {0: float("nan"), 1: float("nan")}, 0.01).reason == "no seed has both runs' values"


def test_measurement_noise_floors_the_spread():
    # Every seed differs by exactly 2 points: zero spread, an interval of no width ...
    diffs = {0: 0.02, 1: 0.02, 2: 0.02}
    assert judge("higher", diffs, min_effect=0.01).verdict == "held"
    # ... unless each difference is known to carry a 3-point error (two values of 2.1 points).
    noisy = judge_claims([(Rule("higher", 0.01), diffs, {0: 0.03, 1: 0.03, 2: 0.03})], adjust=False)[0]
    assert noisy.verdict == "inconclusive" and noisy.std == pytest.approx(0.03)
    assert noisy.high - noisy.low == pytest.approx(2 * stats.t.ppf(0.975, 2) * 0.03 / math.sqrt(3))
    # Unknown errors (NaN) leave the observed spread alone.
    assert judge_claims([(Rule("higher", 0.01), diffs, {0: math.nan, 1: math.nan, 2: math.nan})], adjust=False)[0].verdict == "held"


def test_a_not_claim_is_never_held_on_an_interval_of_no_width():
    """Runs that all score 0 (nothing learned) agree exactly: that is no evidence of equality."""
    result = judge("not_lower", {0: 0.0, 1: 0.0}, min_effect=0.01, margin=0.03)
    assert result.verdict == "inconclusive" and "no spread measured" in result.reason
