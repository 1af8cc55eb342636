"""pass@k and majority voting against values worked out by hand."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from slowthink.eval.passk import maj_at_n_correct, majority_vote, mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (10, 3, 1, 0.3),  # pass@1 is the fraction correct
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (10, 3, 5, 11 / 12),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
        (4, 1, 4, 1.0),  # every 4-subset of 4 holds the correct one
        (5, 3, 3, 1.0),  # only 2 wrong samples: any 3 include a correct one
        (5, 0, 3, 0.0),
        (5, 5, 1, 1.0),
        (1000, 1, 10, 0.01),
    ],
)
def test_pass_at_k_by_hand(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_formula_exactly() -> None:
    for n, c, k in [(16, 5, 4), (64, 7, 8), (64, 60, 3), (200, 13, 50)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats() -> None:
    # C(10000, 5000) has ~3000 digits; the product form needs none of it.
    value = pass_at_k(10_000, 1, 5_000)
    assert value == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [(0, 0, 1, "n=0"), (4, 5, 1, "c=5"), (4, -1, 1, "c=-1"), (4, 2, 0, "k=0"), (4, 2, 5, "k=5")],
)
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_by_hand() -> None:
    flags = [[True, False, False, False], [True, True, False, False]]
    # pass@1: (1/4 + 2/4) / 2 = 0.375.
    assert mean_pass_at_k(flags, 1) == pytest.approx(0.375)
    # pass@2: 1 - C(3,2)/C(4,2) = 1/2 and 1 - C(2,2)/C(4,2) = 5/6; mean 2/3.
    assert mean_pass_at_k(flags, 2) == pytest.approx(2 / 3)
    # Problems may differ in sample count: 1/2 and 1/3 at pass@1.
    assert mean_pass_at_k([[True, False], [False, True, False]], 1) == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_mean_pass_at_k_errors() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        mean_pass_at_k([], 1)
    with pytest.raises(ValueError, match="problem 1 has 2 samples, fewer than k=4"):
        mean_pass_at_k([[True] * 4, [False, True]], 4)


def test_majority_vote() -> None:
    assert majority_vote(["4", None, "3", "3", "4", "3"]) == "3"
    # Tie 2-2: the answer seen first wins.
    assert majority_vote(["3", "4", "4", None, "3"]) == "3"
    assert majority_vote(["4", "3", "3", "4"]) == "4"
    # None never votes, even when it is the most frequent.
    assert majority_vote([None, None, None, "7"]) == "7"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_majority_vote_with_a_key_returns_the_first_spelling() -> None:
    answers = ["1/2", " 0.5", "3", "0.5 ", "3"]
    # By exact string, "3" wins (2 votes); with a key that merges 0.5 spellings, 0.5 wins 3-2.
    assert majority_vote(answers) == "3"

    def to_value(text: str) -> Fraction:
        return Fraction(text.strip())

    assert majority_vote(answers, key=to_value) == "1/2"


def test_maj_at_n_correct() -> None:
    assert maj_at_n_correct(["3", "4", "4"], [False, True, True]) is True
    assert maj_at_n_correct(["3", "4", "3"], [False, True, False]) is False
    # pass@3 would count this problem; maj@3 does not: the right answer is a minority.
    assert maj_at_n_correct(["5", None, "5", "2"], [False, False, False, True]) is False
    assert maj_at_n_correct([None, None], [False, False]) is False
    assert maj_at_n_correct([" 4", "4 ", "3"], [True, True, False], key=str.strip) is True
    with pytest.raises(ValueError, match=r"answers \(2\) and correct \(3\)"):
        maj_at_n_correct(["3", "4"], [True, False, False])
