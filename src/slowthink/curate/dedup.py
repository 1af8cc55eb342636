"""Exact and near-duplicate problems (paper section 2 merges AIME, MATH, NuminaMath and Open
Reasoner Zero, which share many problems).

- exact: the same normalised token sequence (normalize.py) as an earlier row;
- near: Jaccard similarity of token 3-gram sets >= ``threshold`` with an earlier row *that
  has the same gold answer*. The answer test keeps templated variants ("The quadratic
  8x^2+12x-14 ..." / "The quadratic 3x^2+4x-9 ...": same words, other numbers, another
  answer), which are different problems.

Near duplicates are found in two steps. MinHash LSH (``datasketch``) proposes candidates;
its bands and rows are chosen for the threshold by datasketch's own optimiser with
false-negative weight 0.99 (``LSH_WEIGHTS``): at 128 permutations, 18 bands of 7 rows,
which proposes a pair at Jaccard 0.8 with probability 0.986. The library default (equal
weights; 5 bands x 11 rows at 64 permutations) proposed it with probability 0.36, so most
pairs at the documented threshold were never seen. Each candidate is then **verified**:
its exact Jaccard similarity, over 64-bit hashes of the two rows' shingles, must reach the
threshold, so the LSH's extra candidates never drop a row.

Memory per kept row: the LSH band keys (~1 KB at 128 permutations) and the shingle
hashes (8 bytes each), so a million rows fit in memory; a lookup costs about the same
however many rows came before.

The first occurrence is kept; later copies are dropped and name the row they repeat.
"""

from __future__ import annotations

import hashlib

import numpy as np

from slowthink.curate.normalize import ngrams, normalized_tokens

# datasketch's (false positive, false negative) weights when it picks bands x rows:
# candidates are verified, so a false candidate costs one set intersection, a missed one a duplicate.
LSH_WEIGHTS = (0.01, 0.99)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) datasketch picks for ``threshold`` at ``num_perm`` with ``LSH_WEIGHTS``."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    return lsh.b, lsh.r


def shingle_hashes(tokens: list[str], shingle: int) -> np.ndarray:
    """Sorted unique 64-bit hashes of the token ``shingle``-grams."""
    grams = {g.encode() for g in ngrams(tokens, shingle)}
    values = [int.from_bytes(hashlib.blake2b(g, digest_size=8).digest(), "little") for g in grams]
    return np.unique(np.array(values, dtype=np.uint64))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a | b| of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


class Deduplicator:
    def __init__(self, near_threshold: float = 0.8, num_perm: int = 128, shingle: int = 3):
        from datasketch import MinHashLSH

        if not 0 < near_threshold <= 1:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
        self.exact: dict[bytes, str] = {}
        self.answers: dict[str, str] = {}  # LSH key -> normalised gold answer
        self.shingles: dict[str, np.ndarray] = {}  # LSH key -> its shingle hashes
        self.lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
        self.threshold, self.num_perm, self.shingle = near_threshold, num_perm, shingle
        self._count = 0

    @property
    def bands_rows(self) -> tuple[int, int]:
        """The (bands, rows) the LSH uses."""
        return self.lsh.b, self.lsh.r

    def _minhash(self, hashes: np.ndarray):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm)
        minhash.update_batch([int(h).to_bytes(8, "little") for h in hashes])
        return minhash

    def check(self, row_id: str, problem: str, answer: str = "") -> tuple[str, str] | None:
        """("exact_duplicate" | "near_duplicate", id of the earlier row and the similarity) or None; remembers kept rows."""
        tokens = normalized_tokens(problem)
        digest = hashlib.blake2b(" ".join(tokens).encode(), digest_size=16).digest()
        if digest in self.exact:
            return "exact_duplicate", self.exact[digest]
        hashes = shingle_hashes(tokens, self.shingle)
        minhash = self._minhash(hashes)
        gold = " ".join(normalized_tokens(answer))
        best, best_key = 0.0, None
        for key in self.lsh.query(minhash):
            if self.answers[key] != gold:
                continue
            similarity = jaccard(hashes, self.shingles[key])
            if similarity >= self.threshold and similarity > best:
                best, best_key = similarity, key
        if best_key is not None:
            return "near_duplicate", f"{best_key.split('#')[0]} (Jaccard {best:.2f})"
        self.exact[digest] = row_id
        # LSH keys must be unique: the running count keeps two rows with the same id apart.
        self._count += 1
        key = f"{row_id}#{self._count}" if row_id in self.answers else row_id
        self.lsh.insert(key, minhash)
        self.answers[key] = gold
        self.shingles[key] = hashes
        return None
