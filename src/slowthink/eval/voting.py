"""Majority voting over answers the checker treats as equal (maj@n).

Voting on raw strings splits one answer into as many classes as it has spellings:
``\\frac{1}{2}``, ``0.5``, ``\\dfrac{1}{2}``, ``3``, ``3`` against gold 1/2 has three correct
samples, yet "3" (two votes) wins by string. Here each problem's distinct answers are put
into equivalence classes with the same checker that grades the samples: answer ``b`` joins
the class of the first earlier answer ``a`` for which ``check(gold=a, response=\\boxed{b})``
is correct (greedy, in first-seen order, so a class is named by its first spelling and two
answers are merged only when the checker says so directly, never through a chain).

Every pair of a problem's distinct answers is checked once, all problems in one checker
call (its worker processes share the work), and verdicts are cached by pair, so the same
two spellings seen in another problem are not checked again.

lighteval's maj@n (``MajAtK``/``MajAtN``) normalises each prediction as a string, takes
``max(answers, key=answers.count)`` and compares the winner with the gold. On answers that
are spelled identically when equal, this gives the same winner (ties go to the first seen
in both); it differs where equal answers are spelled differently (above), and in that an
empty prediction there votes as "" while here a sample without an answer never votes.
"""

from __future__ import annotations

from collections.abc import Sequence

from slowthink.rewards.verdict import Checker

# Cache of checker verdicts: (earlier answer, later answer) -> same answer.
PairCache = dict[tuple[str, str], bool]


def _distinct(answers: Sequence[str | None]) -> list[str]:
    seen: dict[str, None] = {}
    for answer in answers:
        if answer is not None:
            seen.setdefault(answer, None)
    return list(seen)


def check_pairs(pairs: Sequence[tuple[str, str]], checker: Checker, cache: PairCache) -> None:
    """Fill ``cache`` with the checker's verdict on each (a, b) pair not in it yet, in one call."""
    todo = list(dict.fromkeys(p for p in pairs if p not in cache and p[0] != p[1]))
    if not todo:
        return
    verdicts = checker.check([a for a, _ in todo], [f"\\boxed{{{b}}}" for _, b in todo])
    for pair, verdict in zip(todo, verdicts, strict=True):
        # A timeout or an error is not "the same": the two answers vote apart.
        cache[pair] = verdict.correct


def answer_classes(answer_lists: Sequence[Sequence[str | None]], checker: Checker | None, cache: PairCache | None = None) -> list[dict[str, str]]:
    """Per problem, each distinct answer -> the first spelling of its class.

    ``checker`` None: answers are equal only as identical strings.
    """
    cache = {} if cache is None else cache
    distinct = [_distinct(answers) for answers in answer_lists]
    if checker is not None:
        check_pairs([(a, b) for values in distinct for i, b in enumerate(values) for a in values[:i]], checker, cache)
    classes = []
    for values in distinct:
        representatives: list[str] = []
        mapping: dict[str, str] = {}
        for value in values:
            same = next((rep for rep in representatives if checker is not None and cache.get((rep, value), False)), None)
            if same is None:
                representatives.append(value)
                same = value
            mapping[value] = same
        classes.append(mapping)
    return classes
