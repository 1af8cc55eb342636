"""A controlled set for decontamination and near-dedup, built from the shared benchmarks.

Planted copies of benchmark problems (LaTeX respellings, wrapped in a 35-word instruction,
both) must be caught; planted non-copies (templated siblings with another number or another
question, short generic problems, mosaics of pieces of three benchmark problems) must not.
``python -m tests.curate.controlled_set`` prints recall and precision of the current rule,
the previous rule (reproduced below) and open-r1's (docs/curation.md quotes the output).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[3] / "shared" / "data" / "benchmarks"
NAMES = ("aime24", "aime25", "hmmt_feb25", "liveaops_2024_8_12_num", "math500", "omni_math_num500")

WRAPPER = (
    "You are a careful competition mathematician. Read the problem stated below, think step by step, "
    "check each computation twice, and write the final answer in a box at the very end. "
    "Here is the problem:"
)
assert len(WRAPPER.split()) == 35

SHORT_GENERIC = [
    "What is the range of $f(x)=1/x^2$?",
    "Compute $\\dbinom{10}{3}$.",
    "Find the sum of the roots of $x^2-5x+6=0$.",
    "Simplify $\\sqrt{50}$.",
    "What is $2^{10}$?",
    "Evaluate $\\log_2 64$.",
    "Find the least common multiple of $12$ and $18$.",
    "How many positive divisors does $96$ have?",
    "Solve for $x$: $3x+7=22$.",
    "What is the remainder when $2^{100}$ is divided by $7$?",
    "Find the area of a circle of radius $3$.",
    "Compute $\\frac{3}{4}+\\frac{5}{6}$.",
    "What is the greatest common divisor of $84$ and $126$?",
    "Find the slope of the line through $(1,2)$ and $(4,11)$.",
    "Evaluate $\\sin^2 x + \\cos^2 x$ at $x = 1$.",
    "How many ways can $5$ books be arranged on a shelf?",
    "Find the distance between $(0,0)$ and $(5,12)$.",
    "What is the sum of the first $20$ positive integers?",
    "Find all real $x$ with $x^2 = 2x + 8$.",
    "Compute $\\lfloor \\sqrt{200} \\rfloor$.",
    "What is the domain of $g(x)=\\sqrt{x-3}$?",
    "Find the vertex of the parabola $y=x^2-4x+1$.",
    "Compute $7!/5!$.",
    "What is $0.\\overline{3}$ as a fraction?",
    "Find the inverse of $f(x)=2x+5$.",
    "Expand $(x+2)^3$.",
    "What is the probability of rolling a sum of $7$ with two dice?",
    "Find the number of diagonals of a convex octagon.",
    "Find the units digit of $3^{2023}$.",
    "If $x+y=10$ and $xy=21$, what is $x^2+y^2$?",
]


def load_benchmarks() -> dict[str, list[tuple[str, str]]]:
    """{benchmark: [(id, problem)]} from the shared data (empty when it is absent)."""
    out = {}
    for name in NAMES:
        path = BENCHMARKS / f"{name}.jsonl"
        if path.is_file():
            out[name] = [(str(row["id"]), row["problem"]) for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())]
    return out


def respell(text: str) -> str:
    """Another LaTeX spelling of the same problem, as copies in training sets have."""
    text = re.sub(r"\^\{(\w)\}", r"^\1", text)  # x^{2} -> x^2
    text = text.replace("\\frac", "\\dfrac").replace("\\le ", "\\leq ").replace("\\ge ", "\\geq ").replace("\\ne ", "\\neq ")
    text = re.sub(r"\$([^$]+)\$", r"\\(\1\\)", text)  # $x$ -> \(x\)
    text = re.sub(r"(?<=\w)([+=-])(?=\w)", r" \1 ", text)
    return re.sub(r"\b(\d)(\d{3})\b", r"\1,\2", text)  # 2024 -> 2,024


def wrap(text: str) -> str:
    return f"{WRAPPER}\n\n{text}\n\nRemember to put your final answer in \\boxed{{}}."


_NUMBER = re.compile(r"(?<![\\\w.])\d+(?![\w.])")


def sibling_number(text: str, rng: random.Random) -> str | None:
    """The template with one number changed (another instance, another answer)."""
    spots = list(_NUMBER.finditer(text))
    if not spots:
        return None
    spot = rng.choice(spots)
    return text[: spot.start()] + str(int(spot.group()) + 3) + text[spot.end() :]


def sibling_question(text: str) -> str | None:
    """The same set-up with another question: the last question sentence replaced (figures,
    which often end a problem, left out)."""
    text = re.sub(r"\[asy\].*?\[/asy\]", " ", text, flags=re.DOTALL)
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    if len(sentences) < 2:
        return None
    keep = [s for s in sentences if not re.match(r"(Express|Enter|Give|Write|Round)\b.*answer", s)]
    if len(keep) < 2:
        return None
    return " ".join(keep[:-1]) + " How many distinct prime factors does the number of such configurations have, counted without multiplicity?"


def mosaic(texts: list[str]) -> str:
    """A third of each of three benchmark problems, glued: no one problem is copied."""
    parts = []
    for i, text in enumerate(texts):
        words = text.split()
        third = len(words) // 3
        parts.append(" ".join(words[i * third : (i + 1) * third]))
    return " ".join(parts)


def build(seed: int = 0, copies_per_kind: int = 100) -> list[tuple[str, str, bool]]:
    """(kind, text, is_copy) rows; empty without the shared benchmarks."""
    benchmarks = load_benchmarks()
    pool = [text for rows in benchmarks.values() for _, text in rows if len(text.split()) >= 12]
    if not pool:
        return []
    rng = random.Random(seed)
    picked = rng.sample(pool, copies_per_kind)
    rows: list[tuple[str, str, bool]] = []
    rows += [("copy: respelled", respell(t), True) for t in picked]
    rows += [("copy: wrapped in a 35-word instruction", wrap(t), True) for t in rng.sample(pool, copies_per_kind)]
    rows += [("copy: respelled and wrapped", wrap(respell(t)), True) for t in rng.sample(pool, copies_per_kind)]
    rows += [("sibling: one number changed", s, False) for t in rng.sample(pool, copies_per_kind) if (s := sibling_number(t, rng))]
    rows += [("sibling: another question", s, False) for t in rng.sample(pool, copies_per_kind) if (s := sibling_question(t))]
    rows += [("short generic problem", t, False) for t in SHORT_GENERIC]
    rows += [("mosaic of three problems", mosaic(rng.sample(pool, 3)), False) for _ in range(copies_per_kind)]
    return rows


def score(rows: list[tuple[str, str, bool]], flags: Callable[[str], bool]) -> dict[str, float]:
    """Recall over copies, precision over flagged rows, and the share flagged per kind."""
    flagged = [(kind, is_copy) for kind, text, is_copy in rows if flags(text)]
    copies = sum(is_copy for _, _, is_copy in rows)
    caught = sum(is_copy for _, is_copy in flagged)
    per_kind = Counter(kind for kind, _ in flagged)
    totals = Counter(kind for kind, _, _ in rows)
    return {
        "recall": caught / copies,
        "precision": caught / len(flagged) if flagged else 1.0,
        **{kind: per_kind[kind] / totals[kind] for kind in totals},
    }


# ---------------------------------------------------------------- the rules compared


def current_rule(n: int = 8, threshold: float = 0.5) -> Callable[[str], bool]:
    from slowthink.curate.decontaminate import BenchmarkIndex

    index = BenchmarkIndex(n, threshold)
    for name, rows in load_benchmarks().items():
        index.add(name, rows)
    return lambda text: index.match(text) is not None


_OLD_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,|\s)(?=\d{3}(?!\d))")
_OLD_ZEROS = re.compile(r"(\d+)\.(\d*?)0+(?!\d)")
_OLD_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\left|\\right|\\displaystyle|\$|\\\(|\\\)|\\\[|\\\]")
_OLD_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|\\[a-z]+|[^\sa-z\d]")


def _old_tokens(text: str) -> list[str]:
    text = _OLD_SPACING.sub(" ", text.lower())
    text = _OLD_THOUSANDS.sub("", _OLD_THOUSANDS.sub("", text))
    text = _OLD_ZEROS.sub(lambda m: f"{m.group(1)}.{m.group(2)}" if m.group(2) else m.group(1), text)
    return _OLD_TOKEN.findall(text)


def _grams(tokens: list[str], n: int) -> list[str]:
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def previous_rule(n: int = 8, threshold: float = 0.5) -> Callable[[str], bool]:
    """The rule before: the share of the *row's* n-grams found in any benchmark problem, all
    problems' hits added together, no LaTeX normalisation."""
    grams = {g for rows in load_benchmarks().values() for _, text in rows for g in _grams(_old_tokens(text), n)}

    def flags(text: str) -> bool:
        mine = _grams(_old_tokens(text), n)
        return bool(mine) and sum(g in grams for g in mine) / len(mine) >= threshold

    return flags


def open_r1_rule(n: int = 8) -> Callable[[str], bool]:
    """open-r1 scripts/decontaminate.py: lower case, whitespace words, any shared 8-gram flags the row."""

    def word_grams(text: str) -> set[str]:
        words = " ".join(text.lower().split()).split()
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}

    grams = {g for rows in load_benchmarks().values() for _, text in rows for g in word_grams(text)}
    return lambda text: bool(word_grams(text) & grams)


if __name__ == "__main__":
    rows = build()
    if not rows:
        raise SystemExit(f"shared benchmarks not found at {BENCHMARKS}")
    results = {"current": score(rows, current_rule()), "previous": score(rows, previous_rule()), "open-r1": score(rows, open_r1_rule())}
    kinds = list(results["current"])
    counts = Counter(kind for kind, _, _ in rows)
    print("| measure | rows | " + " | ".join(results) + " |")
    print("|---|---|" + "---|" * len(results))
    for kind in kinds:
        print(f"| {kind} | {counts.get(kind, '')} | " + " | ".join(f"{100 * r[kind]:.0f}%" for r in results.values()) + " |")


# ---------------------------------------------------------------- near-dedup pairs


def _jaccard(a: str, b: str) -> float:
    from slowthink.curate.normalize import ngrams, normalized_tokens

    x, y = set(ngrams(normalized_tokens(a), 3)), set(ngrams(normalized_tokens(b), 3))
    return len(x & y) / len(x | y)


def near_pairs(seed: int = 0, per_bin: int = 100) -> list[tuple[float, str, str]]:
    """(true Jaccard, original, edited) pairs: words deleted from benchmark problems until the
    token 3-gram Jaccard falls in [0.60, 0.70), [0.70, 0.80), [0.80, 0.90) or [0.90, 1.0)."""
    rng = random.Random(seed)
    pool = [text for rows in load_benchmarks().values() for _, text in rows if len(text.split()) >= 30]
    bins = {(0.6, 0.7): [], (0.7, 0.8): [], (0.8, 0.9): [], (0.9, 1.0): []}
    for text in rng.sample(pool, len(pool)):
        low, high = rng.choice([b for b, found in bins.items() if len(found) < per_bin] or [None]) or (None, None)
        if low is None:
            break
        words = text.split()
        while len(words) > 10:
            words.pop(rng.randrange(len(words)))
            similarity = _jaccard(text, " ".join(words))
            if similarity < high:
                if similarity >= low:
                    bins[(low, high)].append((similarity, text, " ".join(words)))
                break
    return [pair for found in bins.values() for pair in found]


def previous_dedup_flags(a: str, b: str) -> bool:
    """The previous near-dedup: library-default LSH bands at 64 permutations, candidates not verified."""
    from datasketch import MinHash, MinHashLSH

    from slowthink.curate.normalize import ngrams, normalized_tokens

    def minhash(text: str) -> MinHash:
        m = MinHash(num_perm=64)
        m.update_batch([g.encode() for g in set(ngrams(normalized_tokens(text), 3))])
        return m

    lsh = MinHashLSH(threshold=0.8, num_perm=64)
    lsh.insert("a", minhash(a))
    return bool(lsh.query(minhash(b)))


def current_dedup_flags(a: str, b: str) -> bool:
    from slowthink.curate.dedup import Deduplicator

    dedup = Deduplicator(0.8)
    dedup.check("a", a, "1")
    return dedup.check("b", b, "1") is not None


def dedup_table(pairs: list[tuple[float, str, str]]) -> list[str]:
    lines = ["| true Jaccard | pairs | current | previous |", "|---|---|---|---|"]
    for low in (0.6, 0.7, 0.8, 0.9):
        chosen = [(a, b) for j, a, b in pairs if low <= j < low + 0.1]
        if chosen:
            now = sum(current_dedup_flags(a, b) for a, b in chosen) / len(chosen)
            before = sum(previous_dedup_flags(a, b) for a, b in chosen) / len(chosen)
            lines.append(f"| {low:.1f}-{low + 0.1:.1f} | {len(chosen)} | {100 * now:.0f}% | {100 * before:.0f}% |")
    return lines


if __name__ == "__main__":
    print()
    print("\n".join(dedup_table(near_pairs())))
