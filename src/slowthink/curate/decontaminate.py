"""Decontamination: drop training problems that overlap an evaluation benchmark.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

A row is contaminated when at least ``threshold`` of its normalised word/number n-grams
(normalize.py: whitespace, delimiters and number formatting erased) occur in some
benchmark problem. n = 8 tokens by default: long enough that shared phrases such as
"find the number of ordered pairs" do not match, short enough that a copied problem with a
changed sentence still does. A problem shorter than n tokens is one gram (exact match).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from slowthink.curate.normalize import ngrams, normalized_tokens


class BenchmarkIndex:
    """All n-grams of the benchmark problems, each mapped to the benchmark it came from."""

    def __init__(self, n: int = 8, threshold: float = 0.5):
        if not 0 < threshold <= 1:
            raise ValueError(f"decontamination threshold must be in (0, 1], got {threshold}")
        self.n, self.threshold = n, threshold
        self.grams: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def add(self, name: str, problems: Iterable[str]) -> None:
        count = 0
        for problem in problems:
            for gram in ngrams(normalized_tokens(problem), self.n):
                self.grams.setdefault(gram, name)
            count += 1
        self.sizes[name] = self.sizes.get(name, 0) + count

    def add_jsonl(self, path: str | Path) -> None:
        from slowthink.data.problems import load_problems

        self.add(Path(path).stem, (p.problem for p in load_problems(path)))

    def match(self, problem: str) -> tuple[str, float] | None:
        """(benchmark, overlap) when the overlap reaches the threshold, else None."""
        grams = ngrams(normalized_tokens(problem), self.n)
        if not grams:
            return None
        hits = [self.grams[g] for g in grams if g in self.grams]
        overlap = len(hits) / len(grams)
        if overlap >= self.threshold:
            return max(set(hits), key=hits.count), overlap
        return None
