"""Text normalisation for duplicate and contamination matching.

A benchmark problem copied into a training set often differs only in spacing, LaTeX
delimiters or number formatting ("1,000" / "1{,}000" / "1000", "2.50" / "2.5"). We
compare token sequences that erase those differences: lower case, ``$`` and ``\\(``-style
delimiters and spacing commands dropped, thousands separators removed, trailing zeros of
decimals removed, and words / numbers / single symbols as tokens, so "x+1" and "x + 1"
give the same tokens.

LaTeX spellings of one formula are made one before tokenizing: ``\\dfrac``/``\\tfrac`` are
``\\frac``, ``\\leq`` is ``\\le`` (and the like), ``\\text{..}``-style wrappers and braces
go, so ``x^{2}`` and ``x^2``, ``\\dfrac{1}{2}`` and ``\\frac{1}{2}`` are the same tokens
(``\\frac 1 2``; ``\\frac12`` stays ``\\frac 12``). Benchmark copies are often respelled
this way; without it, a respelled copy escaped decontamination about one time in five.
"""

from __future__ import annotations

import re

_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,|\s)(?=\d{3}(?!\d))")
_TRAILING_ZEROS = re.compile(r"(\d+)\.(\d*?)0+(?!\d)")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\left|\\right|\\displaystyle|\$|\\\(|\\\)|\\\[|\\\]")
# Spellings of one symbol (after lower-casing).
_SAME_COMMAND = {
    "\\dfrac": "\\frac",
    "\\tfrac": "\\frac",
    "\\dbinom": "\\binom",
    "\\tbinom": "\\binom",
    "\\leq": "\\le",
    "\\leqslant": "\\le",
    "\\geq": "\\ge",
    "\\geqslant": "\\ge",
    "\\neq": "\\ne",
    "\\to": "\\rightarrow",
    "\\cdots": "\\dots",
    "\\ldots": "\\dots",
    "\\lvert": "|",
    "\\rvert": "|",
    "\\vert": "|",
    "\\%": "%",
    "\\$": " ",
}
_COMMAND = re.compile(r"\\[a-z]+|\\[%$]")
# Wrappers whose content is the text: the command goes, the braces go below.
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mbox|emph)\b")
# Math between $..$, $$..$$, \\(..\\), \\[..\\]: there "ax^3" is "a x^3" (a product of letters).
_MATH = re.compile(r"\$\$.+?\$\$|\$.+?\$|\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
_LETTER_RUN = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|\\[a-z]+|[^\sa-z\d]")


def normalize_number(match: re.Match) -> str:
    whole, decimals = match.group(1), match.group(2)
    return f"{whole}.{decimals}" if decimals else whole


def split_math_letters(text: str) -> str:
    """Letters inside math are single symbols: "ax^3+bx" and "a x^3 + b x" read alike
    (LaTeX commands such as \\log keep their names)."""
    return _MATH.sub(lambda m: _LETTER_RUN.sub(lambda run: " ".join(run.group()), m.group()), text)


def normalized_tokens(text: str) -> list[str]:
    """Tokens of ``text`` with whitespace, delimiter and number-format differences erased."""
    text = split_math_letters(text)
    text = _COMMAND.sub(lambda m: _SAME_COMMAND.get(m.group(), m.group()), text.lower())
    text = _WRAPPER.sub(" ", text).replace("{,}", ",").replace("{", " ").replace("}", " ")
    text = _SPACING.sub(" ", text)
    # Apply twice: "1,000,000" has overlapping separators.
    text = _THOUSANDS.sub("", _THOUSANDS.sub("", text))
    text = _TRAILING_ZEROS.sub(normalize_number, text)
    return _TOKEN.findall(text)


def ngrams(tokens: list[str], n: int) -> list[str]:
    """Joined n-grams; a text shorter than n tokens is one gram of all its tokens."""
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
