"""Accuracy from several samples per problem: pass@k and majority voting (maj@n).

The paper reports pass@1 averaged over several samples per problem (e.g. AIME 2024 at
T = 0.6, section 2) and compares RL runs by it. With n samples of which c are correct,
pass@k is estimated without bias as ``1 - C(n - c, k) / C(n, k)`` (Chen et al., 2021,
"Evaluating Large Language Models Trained on Code"); ``1 - (1 - c/n)^k`` would be biased.
Majority voting picks the most frequent extracted answer (self-consistency, Wang et al.,
2023) and scores that one answer.

Pure functions of counts, booleans and strings: no checker, no model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` are correct.

    Computed as ``1 - prod_{i = n-c+1}^{n} (1 - k / i)``, which equals
    ``1 - C(n-c, k) / C(n, k)`` but never forms the (huge) binomial coefficients.
    """
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"pass@k needs n >= 1 samples and 0 <= c <= n correct, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n (n={n} samples), got k={k}")
    # Fewer than k wrong samples: every k-subset holds a correct one.
    if n - c < k:
        return 1.0
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


def mean_pass_at_k(correct_lists: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; ``correct_lists[p]`` holds problem p's sample flags.

    Problems may have different numbers of samples, but each needs at least k.
    """
    if len(correct_lists) == 0:
        raise ValueError("mean_pass_at_k needs at least one problem, got none")
    total = 0.0
    for index, flags in enumerate(correct_lists):
        if len(flags) < k:
            raise ValueError(f"problem {index} has {len(flags)} samples, fewer than k={k}")
        total += pass_at_k(len(flags), sum(bool(flag) for flag in flags), k)
    return total / len(correct_lists)


def _winning_index(answers: Sequence[str | None], key: Callable[[str], Hashable] | None) -> int | None:
    """Index of the first answer of the most frequent class (None answers never vote)."""
    counts: dict[Hashable, int] = {}
    first_index: dict[Hashable, int] = {}
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        answer_key = answer if key is None else key(answer)
        counts[answer_key] = counts.get(answer_key, 0) + 1
        first_index.setdefault(answer_key, index)
    if not counts:
        return None
    # dicts keep insertion order and max() keeps the first maximum: ties go to the class
    # that appeared first.
    winner = max(counts, key=counts.__getitem__)
    return first_index[winner]


def majority_vote(answers: Sequence[str | None], key: Callable[[str], Hashable] | None = None) -> str | None:
    """The most frequent answer (its first spelling), or None when no sample answered.

    ``key`` maps an answer to what counts as "the same answer" (e.g. a normaliser that
    strips spaces); without it, answers vote by exact string. Ties go to the answer seen
    first; None (no extractable answer) never votes.
    """
    winner = _winning_index(answers, key)
    return None if winner is None else answers[winner]


def maj_at_n_correct(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    key: Callable[[str], Hashable] | None = None,
    checked: Sequence[bool] | None = None,
) -> bool:
    """Whether majority voting over one problem's n samples gives a correct answer.

    ``correct[i]`` is the checker's verdict on sample i, so the checker is not run again:
    the vote's correctness is that of the first sample of the winning class whose check
    finished (``checked[i]``; all, when None): a sample whose check timed out still votes
    with its answer, and a finished check of another sample of its class decides. No
    answer at all, or no finished check in the winning class, is wrong.
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers ({len(answers)}) and correct ({len(correct)}) must have the same length")
    if checked is not None and len(checked) != len(answers):
        raise ValueError(f"answers ({len(answers)}) and checked ({len(checked)}) must have the same length")
    winner = _winning_index(answers, key)
    if winner is None:
        return False
    class_of = (lambda a: a) if key is None else key
    winning_class = class_of(answers[winner])  # type: ignore[arg-type]
    for index, answer in enumerate(answers):
        if answer is not None and class_of(answer) == winning_class and (checked is None or checked[index]):
            return bool(correct[index])
    return False
