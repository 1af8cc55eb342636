"""The verdict rule, by hand-computed cases."""

from __future__ import annotations

import math

import pytest

from slowthink.study.verdict import final_value, judge


def test_held_reversed_inconclusive_for_higher():
    # mean 0.1, std 0.01: 0.1 > 2 x 0.01 -> counts.
    held = judge("higher", {0: 0.09, 1: 0.10, 2: 0.11})
    assert held.verdict == "held" and held.mean == pytest.approx(0.1) and held.std == pytest.approx(0.01)
    assert held.margin == pytest.approx(0.02)
    assert judge("higher", {0: -0.09, 1: -0.10, 2: -0.11}).verdict == "reversed"
    assert judge("lower", {0: -0.09, 1: -0.10, 2: -0.11}).verdict == "held"
    # mean 0.1, std 0.1: within twice the spread.
    assert judge("higher", {0: 0.0, 1: 0.1, 2: 0.2}).verdict == "inconclusive"


def test_not_higher_is_held_unless_clearly_higher():
    assert judge("not_higher", {0: 0.0, 1: 0.1, 2: -0.1}).verdict == "held"
    assert judge("not_higher", {0: -0.3, 1: -0.31, 2: -0.29}).verdict == "held"
    assert judge("not_higher", {0: 0.3, 1: 0.31, 2: 0.29}).verdict == "reversed"
    assert judge("not_lower", {0: -0.3, 1: -0.31, 2: -0.29}).verdict == "reversed"


def test_one_seed_or_missing_values_are_inconclusive_and_min_effect_applies():
    assert judge("higher", {0: 0.5}).verdict == "inconclusive"
    assert judge("not_higher", {0: 0.5}).verdict == "inconclusive"
    assert judge("higher", {0: float("nan"), 1: float("nan")}).verdict == "inconclusive"
    # Identical differences: zero spread, yet below the minimum effect.
    assert judge("higher", {0: 0.01, 1: 0.01}, min_effect=0.05).verdict == "inconclusive"
    assert judge("higher", {0: 0.01, 1: 0.01}).verdict == "held"


def test_final_value_is_the_mean_of_the_last_logged_values():
    rows = [{"step": 1, "a": 1.0}, {"step": 2}, {"step": 3, "a": None}, {"step": 4, "a": 3.0}, {"step": 5, "a": 5.0}]
    assert final_value(rows, "a") == 5.0
    assert final_value(rows, "a", window=2) == 4.0
    assert math.isnan(final_value(rows, "b"))
