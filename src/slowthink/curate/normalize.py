"""Text normalisation for duplicate and contamination matching.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

A benchmark problem copied into a training set often differs only in spacing, LaTeX
delimiters or number formatting ("1,000" / "1{,}000" / "1000", "2.50" / "2.5"). We
compare token sequences that erase those differences: lower case, ``$`` and ``\\(``-style
delimiters and spacing commands dropped, thousands separators removed, trailing zeros of
decimals removed, and words / numbers / single symbols as tokens, so "x+1" and "x + 1"
give the same tokens.
"""

from __future__ import annotations

import re

_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\}|\\,|\s)(?=\d{3}(?!\d))")
_TRAILING_ZEROS = re.compile(r"(\d+)\.(\d*?)0+(?!\d)")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\left|\\right|\\displaystyle|\$|\\\(|\\\)|\\\[|\\\]")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z]+|\\[a-z]+|[^\sa-z\d]")


def normalize_number(match: re.Match) -> str:
    whole, decimals = match.group(1), match.group(2)
    return f"{whole}.{decimals}" if decimals else whole


def normalized_tokens(text: str) -> list[str]:
    """Tokens of ``text`` with whitespace, delimiter and number-format differences erased."""
    text = _SPACING.sub(" ", text.lower())
    # Apply twice: "1,000,000" has overlapping separators.
    text = _THOUSANDS.sub("", _THOUSANDS.sub("", text))
    text = _TRAILING_ZEROS.sub(normalize_number, text)
    return _TOKEN.findall(text)


def ngrams(tokens: list[str], n: int) -> list[str]:
    """Joined n-grams; a text shorter than n tokens is one gram of all its tokens."""
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
