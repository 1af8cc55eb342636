"""Exact and near-duplicate problems (paper section 2 merges AIME, MATH, NuminaMath and Open
Reasoner Zero, which share many problems).

Must not import the CLI; the one module that imports datasketch (tests/test_layers.py).

- exact: the same normalised token sequence (normalize.py) as an earlier row;
- near: estimated Jaccard similarity of token 3-gram sets >= ``threshold`` with an earlier
  row *that has the same gold answer*, found with MinHash LSH (``datasketch``). The answer
  test keeps templated variants ("The quadratic 8x^2+12x-14 ..." / "The quadratic
  3x^2+4x-9 ...": same words, other numbers, another answer), which are different problems.
  Memory grows by ~``num_perm`` x 8 bytes per kept row, so a million rows fit in memory,
  and each lookup costs the same however many rows came before.

The first occurrence is kept; later copies are dropped and name the row they repeat.
"""

from __future__ import annotations

import hashlib

from slowthink.curate.normalize import ngrams, normalized_tokens


class Deduplicator:
    def __init__(self, near_threshold: float = 0.8, num_perm: int = 64, shingle: int = 3):
        from datasketch import MinHashLSH

        self.exact: dict[bytes, str] = {}
        self.answers: dict[str, str] = {}  # LSH key -> normalised gold answer
        self.lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm)
        self.num_perm, self.shingle = num_perm, shingle
        self._count = 0

    def _minhash(self, tokens: list[str]):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm)
        minhash.update_batch([g.encode() for g in set(ngrams(tokens, self.shingle))])
        return minhash

    def check(self, row_id: str, problem: str, answer: str = "") -> tuple[str, str] | None:
        """("exact_duplicate" | "near_duplicate", id of the earlier row) or None; remembers kept rows."""
        tokens = normalized_tokens(problem)
        digest = hashlib.blake2b(" ".join(tokens).encode(), digest_size=16).digest()
        if digest in self.exact:
            return "exact_duplicate", self.exact[digest]
        minhash = self._minhash(tokens)
        gold = " ".join(normalized_tokens(answer))
        similar = [key for key in self.lsh.query(minhash) if self.answers[key] == gold]
        if similar:
            return "near_duplicate", similar[0].split("#")[0]
        self.exact[digest] = row_id
        # LSH keys must be unique: the running count keeps two rows with the same id apart.
        self._count += 1
        key = f"{row_id}#{self._count}" if row_id in self.answers else row_id
        self.lsh.insert(key, minhash)
        self.answers[key] = gold
        return None
