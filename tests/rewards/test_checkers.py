"""make_checker: the one factory of answer checkers (reward, eval, score, distill-tir, SFT filter)."""

from __future__ import annotations

import pytest

from slowthink.rewards.checkers import make_checker
from slowthink.rewards.verdict import ExactMatchChecker


def test_exact_checker_judges_by_string():
    checker = make_checker("exact")
    assert isinstance(checker, ExactMatchChecker)
    assert [v.status for v in checker.check(["42", "42"], ["\\boxed{42}", "\\boxed{41}"])] == ["correct", "wrong"]


def test_math_checker_takes_its_settings():
    checker = make_checker("math", workers=1, timeout_s=3.0, fallback=True)
    try:
        assert (checker.timeout_s, checker.fallback) == (3.0, True)
        # math-verify: 1/2 and 0.5 are the same number; the fallback reads an unboxed answer.
        assert [v.status for v in checker.check(["1/2", "7"], ["\\boxed{0.5}", "so the answer is 7"])] == ["correct", "correct"]
    finally:
        checker.close()


def test_unknown_kind_names_the_choices():
    with pytest.raises(ValueError, match="unknown checker 'fuzzy'; allowed: math, exact"):
        make_checker("fuzzy")
