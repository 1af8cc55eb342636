"""Decontamination: drop training problems that copy an evaluation benchmark problem.

Overlap is measured against **each benchmark problem on its own**, as the share of *that
problem's* normalised n-grams (normalize.py: spacing, delimiters, number formatting and
LaTeX spelling erased) found in the training row. A row is contaminated by benchmark
problem B when

1. at least ``threshold`` of B's n-grams occur in the row: a copy wrapped in a long
   instruction still holds all of B (dividing by the row's length let such copies
   escape), while hits from several benchmark problems are never added together (they
   flagged short generic rows made of common formula pieces);
2. every number of B occurs in the row (as often): a templated sibling with other
   numbers has another answer and is another problem;
3. B's question (its last sentence that is not an answer-format instruction such as
   "Express your answer as a common fraction.") is in the row: word for word when it is
   short (up to 2n tokens), else by the same share: a sibling that keeps the set-up but
   asks for something else ("Find $a$." for "Find $d$."; "the word RADII" for "the word
   ELLIPSE") is another problem.

The question is looked for outside figures (``[asy]`` code, which often ends a problem
and is no sentence); the n-grams and numbers include them (a figure's labels are data).

The drop names B (benchmark and problem id) and the share. n = 8 tokens by default; a
benchmark problem shorter than n tokens is one gram of all its tokens.

open-r1's ``scripts/decontaminate.py`` flags a row when *any* word 8-gram of it (lower
case, split on whitespace) occurs in any benchmark problem: simple and recall-oriented,
but one shared stock phrase of eight words drops a row, and a LaTeX respelling or a
changed space inside a formula hides a copy. docs/curation.md compares the three rules on
a controlled set of planted copies and non-copies.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from slowthink.curate.normalize import ngrams, normalized_tokens
from slowthink.curate.question_type import strip_figures

_SENTENCE_END = {".", "?", "!"}
# "Express your answer as a common fraction." ends many problems and asks nothing new.
_FORMAT_VERBS = {"express", "enter", "give", "write", "round", "leave", "put", "simplify"}


@dataclass(frozen=True)
class Contamination:
    """The benchmark problem a row copies, and the share of its n-grams found in the row."""

    benchmark: str
    problem_id: str
    overlap: float


@dataclass(frozen=True)
class _Problem:
    benchmark: str
    problem_id: str
    grams: frozenset[str]
    numbers: Counter
    question: frozenset[str]
    # A short question's tokens, which a copy holds word for word (None: a long question).
    question_text: str | None
    size: int  # gram length: n, or all the tokens of a shorter problem


def _is_number(token: str) -> bool:
    return token[0].isdigit()


def question_span(tokens: list[str]) -> tuple[int, int]:
    """(start, end) of the question: the last sentence that is not an answer-format instruction."""
    starts = [0] + [i + 1 for i, token in enumerate(tokens[:-1]) if token in _SENTENCE_END]
    spans = list(zip(starts, starts[1:] + [len(tokens)]))
    for start, end in reversed(spans):
        sentence = tokens[start:end]
        if not (sentence[0] in _FORMAT_VERBS and "answer" in sentence):
            return start, end
    return 0, len(tokens)


def question_grams(tokens: list[str], size: int) -> frozenset[str]:
    """The problem's ``size``-grams that hold a token of its question (the window around a
    short question takes in the words before it)."""
    if len(tokens) <= size:
        return frozenset(ngrams(tokens, size))
    start, end = question_span(tokens)
    first, last = max(0, start - size + 1), min(end, len(tokens) - size + 1)
    return frozenset(" ".join(tokens[i : i + size]) for i in range(first, max(last, first + 1)))


class BenchmarkIndex:
    """The n-grams of every benchmark problem, each mapped to the problems that hold it."""

    def __init__(self, n: int = 8, threshold: float = 0.5):
        if not 0 < threshold <= 1:
            raise ValueError(f"decontamination threshold must be in (0, 1], got {threshold}")
        if n < 1:
            raise ValueError(f"decontamination n-gram size must be >= 1, got {n}")
        self.n, self.threshold = n, threshold
        self.problems: list[_Problem] = []
        self.by_gram: dict[str, list[int]] = defaultdict(list)
        # Gram lengths in use: n, and the lengths of problems shorter than n.
        self.sizes: set[int] = set()

    def add(self, name: str, problems: Iterable[tuple[str, str]]) -> None:
        """Index ``(problem id, text)`` pairs of benchmark ``name``."""
        for problem_id, text in problems:
            tokens, words = normalized_tokens(text), normalized_tokens(strip_figures(text))
            if not tokens or not words:
                continue
            size = min(self.n, len(tokens))
            grams = frozenset(ngrams(tokens, size))
            start, end = question_span(words)
            short = f" {' '.join(words[start:end])} " if end - start <= 2 * self.n else None
            numbers = Counter(t for t in tokens if _is_number(t))
            entry = _Problem(name, problem_id, grams, numbers, question_grams(words, min(self.n, len(words))), short, size)
            for gram in grams:
                self.by_gram[gram].append(len(self.problems))
            self.problems.append(entry)
            self.sizes.add(size)

    def add_jsonl(self, path: str | Path) -> None:
        from slowthink.data.table_problems import load_problems

        self.add(Path(path).stem, ((p.id, p.problem) for p in load_problems(path)))

    def _row_grams(self, tokens: list[str]) -> set[str]:
        grams: set[str] = set()
        for size in self.sizes:
            if len(tokens) >= size:
                grams.update(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
        return grams

    def match(self, problem: str) -> Contamination | None:
        """The benchmark problem ``problem`` copies (the largest overlap that passes), or None."""
        tokens = normalized_tokens(problem)
        grams = self._row_grams(tokens)
        # The question is looked for outside figures, on both sides.
        words = normalized_tokens(strip_figures(problem))
        joined, word_grams = f" {' '.join(words)} ", self._row_grams(words)
        hits: Counter = Counter()
        for gram in grams:
            for index in self.by_gram.get(gram, ()):
                hits[index] += 1
        numbers = Counter(t for t in tokens if _is_number(t))
        for index, count in sorted(hits.items(), key=lambda item: -item[1] / len(self.problems[item[0]].grams)):
            entry = self.problems[index]
            overlap = count / len(entry.grams)
            if overlap < self.threshold:
                break
            if entry.numbers - numbers:
                continue  # a number of the benchmark problem is missing: another instance
            if entry.question_text is not None and entry.question_text not in joined:
                continue  # the set-up is there, the (short) question is another
            if entry.question_text is None and len(entry.question & word_grams) / len(entry.question) < self.threshold:
                continue  # the set-up is there, the question is another
            return Contamination(entry.benchmark, entry.problem_id, overlap)
        return None
