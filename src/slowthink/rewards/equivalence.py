"""Is a response's final answer equal to the gold? math-verify plus our strict rules.

This module runs inside the checker's worker processes (``math_checker``), never in the
caller: math-verify can hang on hostile input, and its own timeout is ``signal.alarm``,
which only works in a process's main thread. Importing it is cheap; ``install()`` imports
math-verify, quiets its loggers and tightens its numeric comparison.

Strict rules on top of math-verify (each documented in docs/checker.md and tested):
- the last final answer counts (extraction takes the last box);
- a hedged answer ("3 or 4", "3, 4", "3 \\pm 1" for a single-valued gold) is wrong;
- integers, and expressions that evaluate to integers (10^{12}, 2^{64}, 12.0), compare
  exactly, so 10^{12} + 1 != 10^{12} however large the numbers are;
- other numbers compare exactly, or within a relative 1e-9 when one is a non-integer
  decimal, so 0.33 != 1/3 and 1e-7 != 2e-7 (math-verify rounds to 6 decimals: 0.333333 == 1/3
  and 0.0000001 == 0.0000002), while 0.5 == 1/2 and 0.0833333333333333 == 1/12.

Readings added for right answers math-verify alone judged wrong (each with near misses
tested): upright constants (\\mathrm{e}, \\mathrm{i}, {\\rm e}) are the constants; one
solution set of tuple equations is the same whatever separates its parts; equal words
("odd", \\text{no solution}) are the same answer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slowthink.rewards.extract import (
    MAX_ANSWER_CHARS,
    all_boxed,
    brace_depth,
    extract_answer,
    fallback_answer,
    oversized_answer,
)

# Braces nested deeper than this are not a math answer; refusing them is cheaper than parsing.
MAX_NESTING = 40
# Two numbers (one a decimal) are equal when |a - b| <= REL_TOL * max(|a|, |b|).
REL_TOL = 1e-9
# Golds parsed per worker are kept (a batch has n rollouts per gold; see math_checker).
GOLD_CACHE_SIZE = 4096

_DISJUNCTION_RE = re.compile(r"\bor\b|\\lor\b|\\vee\b|\beither\b", re.IGNORECASE)
# 1e-7 / 2.5E+3 written as plain text: latex2sympy reads "1e-7" as 1*e - 7 (Euler's e).
_SCI_RE = re.compile(r"(?<![\w\\.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
# Upright constants, \mathrm{e} and \mathrm{i} (ISO style), and {\rm e}: latex2sympy reads
# \mathrm{e} as a symbol named e, not Euler's number, and drops it after a factor
# (2\mathrm{e} became 2). Rewritten as the plain letters, which it reads as the constants.
_UPRIGHT_RE = re.compile(r"\\(?:mathrm|textrm|mathup|operatorname|text)\s*\{\s*([ei])\s*\}|\{\s*\\rm\s+([ei])\s*\}")
# A whole span wrapped in \text{...} (or \textbf, \mathrm, \textrm), and a word of 2+ letters.
_TEXT_WRAPPER_RE = re.compile(r"^\s*\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}\s*$")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
# "and" between the parts of one answer: \quad \text{and} \quad, \text{ and }, \; \text{and} \;.
_AND_RE = re.compile(r"(?:\s|~|\\[,;:!]|\\q?quad)*\\text\s*\{\s*and\s*\}(?:\s|~|\\[,;:!]|\\q?quad)*")


@dataclass(frozen=True)
class Judgement:
    """One check's outcome, as the worker sends it back."""

    status: str  # one of verdict.STATUSES
    extracted: str | None = None
    detail: str = ""


def _strip_delimiters(span: str) -> str:
    """``$x$`` / ``\\(x\\)`` / ``\\[x\\]`` / ``$$x$$`` -> ``x`` when one math span is the whole text."""
    span = span.strip()
    for left, right in _DELIMITERS:
        inner = span[len(left) : -len(right)] if len(span) > len(left) + len(right) else ""
        if span.startswith(left) and span.endswith(right) and left not in inner:
            return inner.strip()
    return span


def normalize_span(span: str) -> str:
    """What we hand to math-verify for one answer span (ours or the gold's)."""
    span = _strip_delimiters(span).rstrip(" .")
    span = _UPRIGHT_RE.sub(lambda m: _plain_constant(m, span), span)
    span = drop_repeated_lhs(span)
    return _SCI_RE.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", span)


def _plain_constant(match: re.Match, span: str) -> str:
    """The letter of an upright constant, spaced from a letter on either side (``\\pi e``, not
    ``\\pie``); no space otherwise, since latex2sympy cannot read ``\\frac{1}{ e }``."""
    before = span[match.start() - 1] if match.start() > 0 else ""
    after = span[match.end()] if match.end() < len(span) else ""
    letter = match.group(1) or match.group(2)
    return (" " if before.isalpha() else "") + letter + (" " if after.isalpha() else "")


def drop_repeated_lhs(span: str) -> str:
    """``(x, y) = (1, 2); (x, y) = (3, 4)`` -> ``(1, 2), (3, 4)``: one solution set, whatever
    separates its parts (``;``, ``,``, ``\\quad \\text{and} \\quad``).

    math-verify cannot parse several tuple equations joined by ``;`` or ``,``, and reads them
    joined by ``\\text{and}`` as the last number alone (4), which would pass for a gold of 4.
    Only when every part is an equation with the same tuple on the left; anything else is
    left as it is.
    """
    parts = _top_level_split(_AND_RE.sub(";", span), ";,")
    if parts is None or len(parts) < 2:
        return span
    sides = [_top_level_split(part, "=") for part in parts]
    if any(side is None or len(side) != 2 for side in sides):
        return span
    left = {re.sub(r"\s+", "", side[0]) for side in sides}  # type: ignore[index]
    (lhs,) = left if len(left) == 1 else ("",)
    if not (lhs.startswith("(") and lhs.endswith(")") and "," in lhs):
        return span
    return ", ".join(side[1].strip() for side in sides)  # type: ignore[index]


def _top_level_split(text: str, separators: str) -> list[str] | None:
    """``text`` split at the separators outside any bracket; None when brackets do not pair."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif char in separators and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return parts if depth == 0 and all(parts) else None


def gold_span(gold: str) -> str:
    """The gold's answer span. Several boxes in a gold are parts of one answer: a set of them."""
    boxes = all_boxed(gold)
    if len(boxes) > 1:
        return ", ".join(normalize_span(b) for b in boxes)
    if boxes:
        return normalize_span(boxes[0])
    tagged = extract_answer(gold)
    return normalize_span(tagged if tagged is not None else gold)


def plain_words(span: str) -> str | None:
    """A text answer's words (``\\text{Odd}.`` -> "odd"); None unless the span is only words of
    two or more letters. Equal words are the same answer; anything else goes to math-verify
    as before (which reads "odd" as o*d*d, and "dod" as another product). Only a capital
    first letter is lowered (a sentence's "Odd."); other letters' case is math-verify's call."""
    text = _TEXT_WRAPPER_RE.sub(lambda m: m.group(1), _strip_delimiters(span)).strip().rstrip(".").strip()
    words = (text[:1].lower() + text[1:]).split()
    return " ".join(words) if words and all(_WORD_RE.fullmatch(word) for word in words) else None


def is_hedged(gold_text: str, answer_text: str, gold: Any, answer: Any) -> bool:
    """Several candidate values where the gold has one ("3 or 4", "3, 4", "3 \\pm 1")."""
    from sympy import FiniteSet, Set, Tuple
    from sympy.core.relational import Relational

    if _DISJUNCTION_RE.search(answer_text) and not _DISJUNCTION_RE.search(gold_text):
        return True
    gold_single = not isinstance(gold, (Set, Tuple, Relational, list, tuple))
    return gold_single and isinstance(answer, FiniteSet) and len(answer) > 1


def _numeric_value(expr: Any) -> Any:
    """A 30-digit complex number for a constant expression, else None."""
    from sympy import Basic, Number

    if not isinstance(expr, Basic) or expr.free_symbols:
        return None
    value = expr.doit().evalf(30)
    return value if value.is_number and (isinstance(value, Number) or value.is_finite) else None


def strict_numeric_eq(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
    """Replacement for math-verify's ``sympy_numeric_eq``: relative tolerance, not rounding.

    Exact rationals keep math-verify's exact comparison; as soon as a decimal or an
    irrational is involved, the values must agree to a relative ``REL_TOL``.
    """
    from math_verify import grader
    from sympy import MatrixBase

    if isinstance(a, MatrixBase) and isinstance(b, MatrixBase):
        a, b = grader.safe_sympy_doit(a), grader.safe_sympy_doit(b)
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and a.shape == b.shape:
            return all(strict_numeric_eq(x, y, float_rounding, numeric_precision) for x, y in zip(a, b))
        return False
    # Percentages: latex2sympy writes 28% as 28 * UnevaluatedExpr(1/100); like math-verify we
    # accept both 28 and 0.28 for 28%.
    forms_a = [a] + ([grader.get_pct_val(a)] if grader.get_pct_val(a) is not None else [])
    forms_b = [b] + ([grader.get_pct_val(b)] if grader.get_pct_val(b) is not None else [])
    return any(_close(x, y, float_rounding, numeric_precision) for x in forms_a for y in forms_b)


def _as_written(expr: Any) -> Any:
    """Each decimal read as the exact fraction it was written as: 1.2 -> 6/5, 12.0 -> 12.

    A sympy Float is binary; its own decimal string (at its precision, which latex2sympy
    sizes to the digits typed) gives back the typed decimal, so 1.2 \\times 10^{6} is exactly 1200000.
    """
    from sympy import Float, Rational

    return expr.xreplace({f: Rational(str(f)) for f in expr.atoms(Float)})


def _integer_value(expr: Any) -> int | None:
    """The integer a constant expression equals (10^{12}, 2^{64}, \\binom{40}{20}, 12.0), else None."""
    from sympy import Basic, Integer

    if not isinstance(expr, Basic) or expr.free_symbols:
        return None
    value = _as_written(expr).doit()
    return int(value) if isinstance(value, Integer) else None


def _equals_integer(expr: Any, n: int) -> bool:
    """``expr`` (not itself reduced to an integer) equals the integer ``n`` exactly.

    A decimal that is not an integer never does (2.9999999999 != 3). Another constant
    (ln 8 / ln 2) is evaluated with 30 digits beyond ``n``'s own, so off-by-one is
    caught at any size; only an error below 1e-30 relative could pass.
    """
    from sympy import Abs, Float, Integer

    if expr.atoms(Float):
        return False
    value = _numeric_value(expr)
    if value is None:
        return False
    digits = len(str(abs(n))) + 30
    return bool(Abs(expr.doit().evalf(digits) - Integer(n)) <= Integer(10) ** -30 * max(1, abs(n)))


def _close(a: Any, b: Any, float_rounding: int, numeric_precision: int) -> bool:
    from sympy import Abs, Rational

    if isinstance(a, Rational) and isinstance(b, Rational):
        return bool(a == b)
    # Integers, and expressions that evaluate to integers, compare exactly: a relative
    # tolerance would let 10^{12} + 1 pass for 10^{12}. The tolerance is for decimals.
    int_a, int_b = _integer_value(a), _integer_value(b)
    if int_a is not None and int_b is not None:
        return int_a == int_b
    if int_a is not None or int_b is not None:
        return _equals_integer(b, int_a) if int_a is not None else _equals_integer(a, int_b)
    x, y = _numeric_value(a), _numeric_value(b)
    if x is None or y is None:
        return bool(_ORIGINAL_NUMERIC_EQ(a, b, float_rounding, numeric_precision))
    return bool(Abs(x - y) <= REL_TOL * max(Abs(x), Abs(y)))


_ORIGINAL_NUMERIC_EQ: Any = None


def _numbers_equal(gold: Any, answer: Any) -> bool | None:
    """Both plain numbers (constants, not sets or relations): our numeric rule decides alone.

    Saves math-verify's ``simplify`` on every wrong numeric answer (most of the cost of a
    wrong answer); None when either side is not a plain number.
    """
    from sympy import Expr

    if not (isinstance(gold, Expr) and isinstance(answer, Expr)) or gold.free_symbols or answer.free_symbols:
        return None
    if _numeric_value(gold) is None or _numeric_value(answer) is None:
        return None
    return strict_numeric_eq(gold, answer, 6, 15)


def install() -> None:
    """Import math-verify in this (worker) process, quiet it, and install the strict numeric rule."""
    global _ORIGINAL_NUMERIC_EQ
    from math_verify import grader

    # math-verify logs the whole prediction on every timeout and warns that its own timeout
    # is off (we turn it off on purpose: the worker and the parent enforce deadlines).
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if _ORIGINAL_NUMERIC_EQ is None:
        _ORIGINAL_NUMERIC_EQ = grader.sympy_numeric_eq
        grader.sympy_numeric_eq = strict_numeric_eq


def parse_span(span: str) -> list[Any]:
    """math-verify's parse of one span, wrapped as ``\\boxed{span}`` so it reads all of it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(f"\\boxed{{{span}}}", extraction_config=config, parsing_timeout=None)


class GoldCache:
    """Parsed golds of this worker: each distinct gold is parsed once, not once per rollout."""

    def __init__(self, size: int = GOLD_CACHE_SIZE):
        self.size = size
        self._parsed: dict[str, tuple[str, list[Any]]] = {}

    def get(self, gold: str) -> tuple[str, list[Any]]:
        if gold not in self._parsed:
            if len(self._parsed) >= self.size:
                self._parsed.pop(next(iter(self._parsed)))  # oldest first
            span = gold_span(gold)
            self._parsed[gold] = (span, parse_span(span) if span else [])
        return self._parsed[gold]


def judge(gold: str, response: str, golds: GoldCache, fallback: bool = False) -> Judgement:
    """The whole check of one response against one gold (in a worker, under its deadline)."""
    from math_verify import verify

    gold_text, gold_parsed = golds.get(gold)
    answer = extract_answer(response)
    if answer is None and (size := oversized_answer(response)) is not None:
        # Boxed, but too long to parse (a two-million-digit number): an answer, and wrong.
        return Judgement("wrong", None, f"boxed answer of {size} characters, over the {MAX_ANSWER_CHARS}-character limit")
    if answer is None and fallback:
        answer = fallback_answer(response)
    if answer is not None and (words := plain_words(gold_text)) is not None and words == plain_words(answer):
        return Judgement("correct", answer)  # the same words ("odd", \text{no solution}): sympy reads words as products
    # math-verify returns the raw string when sympy cannot read it; a gold must be math.
    if all(isinstance(item, str) for item in gold_parsed):
        return Judgement("unparseable_gold", detail=f"math-verify cannot parse the gold {gold_text[:80]!r}")
    if answer is None:
        return Judgement("no_answer")
    if len(answer) > MAX_ANSWER_CHARS or brace_depth(answer) > MAX_NESTING:
        return Judgement("wrong", answer[:200], f"answer too long or nested deeper than {MAX_NESTING}")
    span = normalize_span(answer)
    parsed = parse_span(span)
    if not parsed:
        return Judgement("wrong", answer, "math-verify cannot parse the answer")
    if is_hedged(gold_text, span, gold_parsed[0], parsed[0]):
        return Judgement("wrong", answer, "hedged: several candidate answers for a single-valued gold")
    numeric = _numbers_equal(gold_parsed[0], parsed[0])
    if numeric is not None:
        return Judgement("correct" if numeric else "wrong", answer)
    if verify(gold_parsed, parsed, timeout_seconds=None):
        return Judgement("correct", answer)
    return Judgement("wrong", answer)
