"""Final-answer extraction: the last ``\\boxed{}``/``\\fbox{}`` (brace-matched) or ``<answer>…</answer>``.

Caps on length and nesting keep hostile responses cheap: we never scan more than
``MAX_SCAN_CHARS`` from the end, and an answer longer than ``MAX_ANSWER_CHARS`` is
treated as no answer.
"""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 200_000
MAX_ANSWER_CHARS = 2_000
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _match_braces(text: str, open_index: int) -> int | None:
    """Index just past the brace that closes ``text[open_index] == '{'``, or None."""
    depth = 0
    for i in range(open_index, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` or ``\\fbox{...}``; None when there is none."""
    text = text[-MAX_SCAN_CHARS:]
    starts = [m.end() - 1 for m in _BOX_RE.finditer(text)]
    for start in reversed(starts):
        end = _match_braces(text, start)
        if end is not None:
            content = text[start + 1 : end - 1].strip()
            return content if len(content) <= MAX_ANSWER_CHARS else None
    return None


def answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>…</answer>``; a boxed answer inside it wins."""
    matches = _ANSWER_TAG_RE.findall(text[-MAX_SCAN_CHARS:])
    if not matches:
        return None
    content = matches[-1].strip()
    boxed = last_boxed(content)
    content = boxed if boxed is not None else content
    return content if content and len(content) <= MAX_ANSWER_CHARS else None


def extract_answer(text: str) -> str | None:
    """The response's final answer: last boxed, else last ``<answer>`` tag, else None."""
    boxed = last_boxed(text)
    return boxed if boxed is not None else answer_tag(text)
