"""Answer extraction: last box (brace-matched), answer tags, caps, linear time, and the eval-only fallback."""

import time

import pytest

from slowthink.rewards.extract import (
    MAX_ANSWER_CHARS,
    all_boxed,
    answer_tag,
    brace_depth,
    extract_answer,
    fallback_answer,
    last_boxed,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\fbox{7}", "7"),
        (r"\boxed {x^{2}+1}", "x^{2}+1"),
        (r"first \boxed{4} wait, no: \boxed{3}", "3"),  # the last final answer counts
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces do not close the box
        (r"\boxed{\boxed{5}}", r"\boxed{5}"),  # the outermost of the boxes that close last
        (r"\boxed{4} and then \boxed{3", "4"),  # an unclosed box is not an answer
        (r"\boxed{  }", None),
        ("no box at all", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_answer_longer_than_cap_is_no_answer():
    assert last_boxed(r"\boxed{" + "7" * (MAX_ANSWER_CHARS + 1) + "}") is None
    assert last_boxed(r"\boxed{" + "7" * MAX_ANSWER_CHARS + "}") == "7" * MAX_ANSWER_CHARS


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>hmm</think> <answer>3</answer>", "3"),
        ("<answer>1</answer> then <answer> 2 </answer>", "2"),
        (r"<answer>the value is \boxed{5}</answer>", "5"),
        ("<answer>3", None),
        ("3</answer>", None),
    ],
)
def test_answer_tag(text, expected):
    assert answer_tag(text) == expected


def test_boxed_wins_over_tag_and_tag_used_without_box():
    assert extract_answer(r"<answer>3</answer> \boxed{4}") == "4"
    assert extract_answer("<answer>3</answer>") == "3"
    assert extract_answer("The answer is 3") is None  # strict by default


def test_all_boxed_takes_outer_boxes_in_order():
    assert all_boxed(r"\boxed{1} and \boxed{2 + \boxed{3}} and \boxed{4}") == ["1", r"2 + \boxed{3}", "4"]


def test_brace_depth():
    assert brace_depth("a{b{c}}{d}") == 2
    assert brace_depth(r"\{ \} x") == 0
    assert brace_depth("{" * 50 + "}" * 50) == 50


@pytest.mark.parametrize(
    "hostile",
    [
        "\\boxed{" * 30_000,  # thousands of unclosed boxes: quadratic with a naive scan
        "<answer>" * 25_000,  # thousands of unclosed tags: quadratic with a lazy regex
        "{" * 200_000,
        "$" * 200_000 + "\\(" * 50_000,
    ],
)
def test_extraction_is_linear_on_hostile_text(hostile):
    start = time.perf_counter()
    extract_answer(hostile)
    fallback_answer(hostile)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\frac{10}{9}", r"\frac{10}{9}"),  # a bare expression is the answer
        ("7,425,000", "7,425,000"),
        ("Final Answer: The final answer is $12$. I hope it is correct.", "12"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("So the answer is: 3 apples.\nDone, 4 steps in all.", "3"),
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5"),
        ("there are 12 sequences, given $d = 90/n$ earlier... so 12 of them.", "12"),
        ("the probability is 2/3.", "2/3"),
        ("it increases by 100%.", "100%"),
        ("AZYUK2A", None),  # a digit glued to a word is not a number
        ("nothing numeric here at all", None),
    ],
)
def test_fallback_answer(text, expected):
    assert fallback_answer(text) == expected
