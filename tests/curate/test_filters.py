"""Every curation filter drops a hand-made positive and keeps a negative (paper section 2)."""

from __future__ import annotations

import pytest

from slowthink.curate.answer import answer_unparseable
from slowthink.curate.decontaminate import BenchmarkIndex
from slowthink.curate.dedup import Deduplicator
from slowthink.curate.normalize import normalized_tokens
from slowthink.curate.question_type import is_multi_part, is_multiple_choice, is_open_ended, is_proof

# (filter, problem, answer) that must be dropped / kept.
POSITIVES = [
    (is_multiple_choice, "What is $2+2$? (A) 3 (B) 4 (C) 5", "4"),
    (is_multiple_choice, "What is $2+2$? $\\textbf{(A)}\\ 3 \\qquad \\textbf{(B)}\\ 4$", "4"),
    (is_multiple_choice, "Which of the following is prime: 4, 6, 7?", "7"),
    (is_multiple_choice, "Pick the right option for 2+2.", "\\text{(B)}"),
    (is_proof, "Prove that $n^2+n$ is even for every integer $n$.", "even"),
    (is_proof, "Let $f(x)=x^3$. Show that $f$ is injective.", "f"),
    (is_multi_part, "(a) Find $x$ if $2x=4$. (b) What is $x^2$?", "4"),
    (is_multi_part, "Part 1: compute $3!$. Part 2: determine $4!$.", "24"),
    (is_open_ended, "Explain why the harmonic series diverges.", "diverges"),
    (is_open_ended, "Is 7 prime?", "Yes"),
    (is_open_ended, "What happens to the series?", "the series diverges by comparison"),
]
NEGATIVES = [
    (is_multiple_choice, "Point (A) is at the origin and $B=(3,4)$. Find $AB$.", "5"),
    (is_multiple_choice, "[asy] dot(A); dot(B); [/asy] Find the distance from $A$ to $B$.", "5"),
    (is_proof, "The census numbers show that the count falls by 40% a year. In which year is it below 10%?", "2009"),
    (is_proof, "In how many ways can the letters of the word PROOF be arranged?", "60"),
    (is_multi_part, "A function satisfies (i) $f(1)=2$ and (ii) $f(x+1)=f(x)+3$. Find $f(10)$.", "29"),
    (is_open_ended, "Compute $\\frac{3}{4}+1$.", "\\frac{7}{4}"),
    (is_open_ended, "How long is the side?", "5 cm"),
    (is_open_ended, "Find the point.", "\\text{(2, 3)}"),
]


@pytest.mark.parametrize("rejects,problem,answer", POSITIVES, ids=lambda v: getattr(v, "__name__", None))
def test_question_type_filters_drop_their_positive(rejects, problem, answer):
    assert rejects(problem, answer)


@pytest.mark.parametrize("rejects,problem,answer", NEGATIVES, ids=lambda v: getattr(v, "__name__", None))
def test_question_type_filters_keep_their_negative(rejects, problem, answer):
    assert not rejects(problem, answer)


def test_unparseable_gold_is_dropped_and_math_is_kept():
    assert answer_unparseable("see the solution above")
    assert answer_unparseable("")
    assert answer_unparseable("?")
    assert answer_unparseable("x" * 500)
    for gold in ("\\frac{3}{4}", "(2, 3)", "10\\%", "42"):
        assert not answer_unparseable(gold), gold


def test_normalisation_erases_whitespace_delimiters_and_number_format():
    a = normalized_tokens("Find $x+1$ if x = 1,000 and y = 2.50.")
    b = normalized_tokens("Find  \\(x + 1\\)   if x=1{,}000 and y = 2.5.")
    assert a == b
    assert "1000" in a and "2.5" in a


def test_decontamination_catches_whitespace_and_number_formatting_changes():
    benchmark = "Let $N$ be the number of ordered pairs $(a,b)$ of integers with $1 \\le a, b \\le 1000$ such that $a^2 + b^2$ is divisible by $7$. Find $N$ modulo $1000$."
    index = BenchmarkIndex(n=8, threshold=0.5)
    index.add("aime24", [("I-3", benchmark)])
    changed = "Let  $N$ be the number of ordered pairs $(a, b)$ of integers with $1\\leq a,b\\leq 1{,}000$ such that\n$a^2+b^2$ is divisible by $7$.  Find $N$ modulo $1,000.0$."
    changed = changed.replace("\\leq", "\\le")
    hit = index.match(changed)
    assert hit is not None and (hit.benchmark, hit.problem_id) == ("aime24", "I-3") and hit.overlap >= 0.5
    # A different problem sharing common phrases stays.
    assert index.match("Let $N$ be the number of positive divisors of $2024$. Find $N$.") is None
    assert index.match(benchmark).overlap == 1.0


def test_decontamination_threshold_is_configurable():
    index = BenchmarkIndex(n=3, threshold=0.9)
    index.add("b", [("p", "one two three four five six seven")])
    assert index.match("one two three four nine ten eleven") is None  # 2 of the benchmark problem's 5 trigrams
    index = BenchmarkIndex(n=3, threshold=0.4)
    index.add("b", [("p", "one two three four five six seven")])
    hit = index.match("one two three four nine ten eleven")
    assert (hit.benchmark, hit.problem_id, hit.overlap) == ("b", "p", 0.4)
    with pytest.raises(ValueError, match="threshold"):
        BenchmarkIndex(threshold=0.0)


def test_exact_and_near_duplicates_are_dropped_and_variants_kept():
    dedup = Deduplicator(near_threshold=0.7)
    base = "A train travels 120 miles in 2 hours and then 180 miles in 3 hours. What is its average speed for the whole trip in miles per hour?"
    assert dedup.check("r1", base, "60") is None
    assert dedup.check("r2", base.replace(" ", "  "), "60") == ("exact_duplicate", "r1")
    reworded = base.replace("What is its average speed", "Find its average speed")
    kind, detail = dedup.check("r3", reworded, "60")
    assert kind == "near_duplicate" and detail.startswith("r1 (Jaccard 0.")
    # Same template, other numbers and another answer: a different problem.
    variant = base.replace("120", "100").replace("180", "200").replace("2 hours", "4 hours")
    assert dedup.check("r4", variant, "50") is None
    assert dedup.check("r5", "Compute the sum of the first 100 positive odd integers.", "10000") is None
