"""A boxed answer too long to check is still an answer, and wrong."""

from slowthink.rewards.extract import MAX_ANSWER_CHARS, MAX_SCAN_CHARS, last_boxed, oversized_answer
from slowthink.rewards.verdict import ExactMatchChecker


def test_oversized_answer_measures_the_final_box():
    long = "7" * (MAX_ANSWER_CHARS + 1)
    assert last_boxed(rf"\boxed{{{long}}}") is None  # too long to hand to the parser
    assert oversized_answer(rf"so \boxed{{{long}}} done") == MAX_ANSWER_CHARS + 1
    # A box opened before the scan window still counts.
    huge = "7" * (MAX_SCAN_CHARS * 2)
    assert oversized_answer(rf"\boxed{{{huge}}}") == len(huge)
    assert oversized_answer(r"\boxed{3}") is None and oversized_answer("no box") is None
    # The last box is the final answer: a short one after a long one is not oversized.
    assert oversized_answer(rf"\boxed{{{long}}} then \boxed{{3}}") is None


def test_exact_checker_calls_it_wrong_not_no_answer():
    verdict = ExactMatchChecker().check(["7"], [r"\boxed{" + "7" * 5000 + "}"])[0]
    assert verdict.status == "wrong"
