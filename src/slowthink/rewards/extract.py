"""Final-answer extraction: the last ``\\boxed{}``/``\\fbox{}`` (brace-matched) or ``<answer>…</answer>``.

The paper's correctness reward reads the response's final answer (section 4.2.1); the
last one counts, so a corrected answer (``\\boxed{4} … \\boxed{3}``) is read as 3.

Every scan here is linear in the text: braces are paired in one pass with a stack and
tags are found with ``rfind``, so a hostile response (thousands of unclosed ``\\boxed{``
or ``<answer>``) costs no more than a normal one of the same length. We never scan more
than ``MAX_SCAN_CHARS`` from the end, and an answer longer than ``MAX_ANSWER_CHARS`` is
treated as no answer.

``fallback_answer`` is for evaluating models that were not trained to box their answer:
"the answer is X", the last ``$…$`` math, the last number. It is off by default and must
not be used for rewards: it would pay a model for leaving a number near the end.
"""

from __future__ import annotations

import re

MAX_SCAN_CHARS = 200_000
MAX_ANSWER_CHARS = 2_000
# The fallback only looks at the end of a response, where a final answer is written.
FALLBACK_SCAN_CHARS = 5_000
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"(?<!\\)[{}]")
_OPEN_TAG, _CLOSE_TAG = "<answer>", "</answer>"


def _brace_pairs(text: str) -> dict[int, int]:
    """Map each ``{`` index to the index of its matching ``}`` (one pass; escaped ``\\{`` skipped)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for match in _BRACE_RE.finditer(text):
        if match.group() == "{":
            stack.append(match.start())
        elif stack:
            pairs[stack.pop()] = match.start()
    return pairs


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every closed ``\\boxed{…}``/``\\fbox{…}`` content, in order of appearance."""
    pairs = _brace_pairs(text)
    spans = []
    for match in _BOX_RE.finditer(text):
        close = pairs.get(match.end() - 1)
        if close is not None:
            spans.append((match.end(), close))
    return spans


def _capped(content: str) -> str | None:
    content = content.strip()
    return content if content and len(content) <= MAX_ANSWER_CHARS else None


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` or ``\\fbox{...}``; None when there is none."""
    text = text[-MAX_SCAN_CHARS:]
    spans = _boxed_spans(text)
    if not spans:
        return None
    # A box nested inside the last one (\boxed{\boxed{3}}) starts later but ends inside it:
    # the outermost of the boxes that close last is the final answer.
    start, end = max(spans, key=lambda span: (span[1], -span[0]))
    return _capped(text[start:end])


def all_boxed(text: str) -> list[str]:
    """Contents of every outermost closed box, in order (for golds that box several parts)."""
    text = text[-MAX_SCAN_CHARS:]
    outer: list[tuple[int, int]] = []
    for start, end in _boxed_spans(text):
        if outer and start < outer[-1][1]:
            continue  # nested inside the previous outer box
        outer.append((start, end))
    return [text[s:e].strip() for s, e in outer if text[s:e].strip()]


def oversized_answer(text: str) -> int | None:
    """Length of the final boxed answer when it is too long to check, else None.

    ``last_boxed`` returns None for a box over ``MAX_ANSWER_CHARS`` (or one opened before
    its scan window), but such a box is still the response's final answer, and a wrong
    one: a two-million-digit number is an answer, not "no answer". The checkers call this
    only when ``extract_answer`` found nothing; it reads the whole text once (linear).
    """
    spans = _boxed_spans(text)
    if not spans:
        return None
    start, end = max(spans, key=lambda span: (span[1], -span[0]))
    length = end - start
    return length if length > MAX_ANSWER_CHARS else None


def answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>…</answer>``; a boxed answer inside it wins."""
    text = text[-MAX_SCAN_CHARS:]
    close = text.rfind(_CLOSE_TAG)
    if close < 0:
        return None
    open_ = text.rfind(_OPEN_TAG, 0, close)
    if open_ < 0:
        return None
    content = text[open_ + len(_OPEN_TAG) : close]
    boxed = last_boxed(content)
    return boxed if boxed is not None else _capped(content)


def extract_answer(text: str) -> str | None:
    """The response's final answer: last boxed, else last ``<answer>`` tag, else None."""
    boxed = last_boxed(text)
    return boxed if boxed is not None else answer_tag(text)


def brace_depth(text: str) -> int:
    """Deepest ``{`` nesting in ``text`` (the checker refuses answers nested absurdly deep)."""
    depth = deepest = 0
    for match in _BRACE_RE.finditer(text):
        depth = depth + 1 if match.group() == "{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


# --- evaluation-only fallback -------------------------------------------------------------

# "The final answer is X", "the answer is: X", "Answer: X" (the last such phrase counts), and
# the same marker in the languages models answer in: "Réponse : X", "La réponse est X",
# "Antwort: X", "Respuesta: X", "Risposta: X", "Resposta: X", "Ответ: X", "答案是 X",
# "答案：X", "答え：X", "정답: X". A colon may be full-width (：) or follow a space (French).
_COLON = r"\s*[:：]"
_ANCHOR_RE = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*:?|\banswer"
    + _COLON
    + r"|\bla\s+réponse(?:\s+finale)?\s+est\b|\bréponse(?:\s+finale)?"
    + _COLON
    + r"|\bdie\s+antwort\s+ist\b|\bantwort"
    + _COLON
    + r"|\bla\s+respuesta(?:\s+final)?\s+es\b|\brespuesta(?:\s+final)?"
    + _COLON
    + r"|\bla\s+risposta\s+è\b|\brisposta"
    + _COLON
    + r"|\ba\s+resposta\s+é\b|\bresposta"
    + _COLON
    + r"|\bответ"
    + _COLON
    + r"|(?:最终)?答案\s*(?:是|为|[:：])|答え\s*(?:は|[:：])|정답\s*(?:은|는|[:：])",
    re.IGNORECASE,
)
# Math spans, each bounded in length so a hostile text cannot make the search quadratic;
# an escaped dollar (\$) inside inline math does not close it.
_MATH_RE = re.compile(
    r"\$\$(?P<a>[^$]{1,500}?)\$\$|\\\[(?P<b>.{1,500}?)\\\]|\\\((?P<c>.{1,500}?)\\\)"
    r"|(?<!\\)\$(?P<d>(?:\\.|[^$\\\n]){1,500}?)\$",
    re.DOTALL,
)
# Letters of the alphabets that put spaces between words (Latin, Cyrillic; not Greek, whose
# letters are math symbols): a digit glued to them is part of a code ("AZYUK2A" holds no
# number). CJK text has no spaces between words, so "答案是12" holds 12.
_ALPHABET = "A-Za-z\u00c0-\u024f\u0400-\u04ff"
# A number not glued to a preceding word; 7,425,000, 2/3 and 28% stay whole.
_NUMBER_RE = re.compile(rf"(?<![{_ALPHABET}0-9_.,])-?(?:\d+(?:[.,]\d+)*|\.\d+)(?:/\d+)?%?")
# A sentence ends at a period followed by a space or the end (a decimal point is followed by
# a digit), a full-width period, or a line break.
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|[。\n]")
# A clause after the answer: a comma, then a word ("12, in 3 steps"; not "1, 2, 3").
_CLAUSE_END_RE = re.compile(r"[,，;；]\s*(?=[^\W\d_]{2,})")
# A number at the start of the answer's sentence is the answer unless an operator follows it
# ("12 (in 3 steps)" is 12; "2 + 3 = 5" is not 2).
_LEADING_NUMBER_RE = re.compile(_NUMBER_RE.pattern + r"(?!\s*[-+*/=^<>≤≥×÷·\\,.0-9])")
# A word (two or more letters not part of a LaTeX command), or one CJK character: a text
# with one is prose, not a bare expression. Environment names (\begin{bmatrix}) are not words.
_WORD_RE = re.compile(rf"(?<![\\{_ALPHABET}])[{_ALPHABET}]{{2,}}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_ENVIRONMENT_RE = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]*\}")
# A bare word answer: the whole response is at most four words ("odd", "Neither.", "no solution").
_BARE_WORDS_RE = re.compile(r"[A-Za-z]+(?:[ -][A-Za-z]+){0,3}")
_BARE_MAX_CHARS = 300


def _last_candidate(text: str) -> str | None:
    """The later-ending of the last math span and the last number (the last answer counts)."""
    best: tuple[int, str] | None = None
    for match in _MATH_RE.finditer(text):
        best = (match.end(), next(group for group in match.groups() if group is not None))
    numbers = list(_NUMBER_RE.finditer(text))
    if numbers and (best is None or numbers[-1].end() > best[0]):
        best = (numbers[-1].end(), numbers[-1].group())
    return _capped(best[1]) if best is not None else None


def _anchored(text: str) -> str | None:
    """The sentence after the last "the answer is": its leading math span or number, else
    the last candidate of its first clause."""
    anchors = list(_ANCHOR_RE.finditer(text))
    if not anchors:
        return None
    rest = text[anchors[-1].end() :].lstrip()
    math = _MATH_RE.match(rest)
    if math is not None:
        return _capped(next(group for group in math.groups() if group is not None))
    number = _LEADING_NUMBER_RE.match(rest)
    if number is not None:
        return number.group()
    end = _SENTENCE_END_RE.search(rest)
    sentence = rest[: end.start()] if end else rest
    clause = sentence[: m.start()] if (m := _CLAUSE_END_RE.search(sentence)) else sentence
    return _last_candidate(clause) or _capped(clause)


def _bare(text: str) -> str | None:
    """The whole response, when it is a bare expression (no word in it) or a few bare words."""
    if not text or len(text) > _BARE_MAX_CHARS:
        return None
    if not _WORD_RE.search(_ENVIRONMENT_RE.sub(" ", text)):
        return text
    words = text.rstrip(".")
    return words if _BARE_WORDS_RE.fullmatch(words) else None


def fallback_answer(text: str) -> str | None:
    """Evaluation only, when nothing is boxed: a bare expression or a few words as the whole
    response, else the sentence after "the answer is", else the last math span or number."""
    bare = _bare(text.strip())
    if bare is not None:
        return bare
    tail = text[-FALLBACK_SCAN_CHARS:]
    return _anchored(tail) or _last_candidate(tail)
