"""Question types a verifiable-reward pool cannot use (paper section 2, "Verifiability").

The paper removes multiple-choice, proof, concept / open-ended questions and questions with
several sub-problems, "due to challenges in answer verification": a correctness reward
needs one short final answer that a checker can compare. Each filter below is a pure
function of the problem text and its gold answer that returns True when the row must go.
They are heuristics over surface patterns, tuned to keep ordinary competition problems;
docs/curation.md lists what each catches and keeps, with examples.
"""

from __future__ import annotations

import re

# Asymptote figure code ("dot(A); label("B", B)") reads like option labels: ignored.
_FIGURE = re.compile(r"\[asy\].*?\[/asy\]", re.DOTALL)

# "(A) 3 (B) 4 ..." / "$\text{(A)}\ 0.5$" / "A. 3" at a line start / "A: 3  B: 4" (NuminaMath's
# options, also with a full-width colon; not a ratio "A:B") / "which of the following".
_CHOICE_LABEL = re.compile(r"\(([A-E])\)|(?:^|\n)\s*([A-E])[.)]\s|(?:^|(?<=\s))([A-E])\s*[:：](?:\s+|(?=[$\d(\-\\]))(?=\S)")
_WHICH_OF = re.compile(r"\bwhich (?:one )?of the following\b|\banswer choices\b", re.IGNORECASE)
_LETTER_ANSWER = re.compile(r"^\s*(?:\\text\{|\\textbf\{|\\mathrm\{)?\s*\(?\s*([A-E])\s*\)?\s*\}?\s*$")

# "Prove that ..." anywhere; "Show that ..." / "Demonstrate that ..." as a sentence's first
# words ("the census shows that ..." asks for no proof); "proof" in lower case only ("the
# letters of the word PROOF" is a counting problem).
_PROVE = re.compile(r"\bprove\b|(?:^|[.?!:]\s+)(?:show|demonstrate|verify)\s+that\b|\bjustify your answer\b", re.IGNORECASE | re.MULTILINE)
_PROOF_WORD = re.compile(r"\bproof\b")

# Sub-problem labels: "(a)", "(b)" ...; "(i)", "(ii)" ...; "(1)", "(2)" ...; "(Ⅰ)", "(Ⅱ)" ...
# (NuminaMath's Roman numerals, full-width brackets too); "1.", "2." at a line start;
# "Part 1", "Part 2". A bracket right after a letter, digit, backslash or ")" is a function's
# argument or a product, not a label: f(a), f(b), g(1), x(2) are not parts.
_PART_LABEL = re.compile(
    r"(?<![\w\\)^_'])[(（](?:[a-e]|i{1,3}|iv|v|[1-5]|[ⅠⅡⅢⅣⅤ])[)）]|(?:^|\n)\s*[1-5]\.\s|\bpart\s+(?:[1-5]|[a-e])\b",
    re.IGNORECASE,
)
# What makes a part a question (not a condition): a question mark or an imperative.
_ASKS = re.compile(r"\?|\b(?:find|compute|determine|calculate|evaluate|what|how many|show|prove)\b", re.IGNORECASE)

# Open-ended / concept: asks to explain or describe, or the gold answer is prose or yes/no.
_OPEN_VERBS = re.compile(r"^\s*(?:explain|describe|discuss|why)\b|\bexplain (?:why|how)\b|\bwhat is meant by\b", re.IGNORECASE)
_YES_NO = re.compile(r"^\s*(?:\\text\{)?\s*(?:yes|no|true|false|impossible|none)\s*\.?\s*\}?\s*$", re.IGNORECASE)
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}\b")
# Units and connectives are words a numeric answer may carry ("5 cm", "2 and 3").
_ANSWER_FILLER = re.compile(r"\b(?:and|or|units?|cm|km|kg|degrees?|dollars?|cents?|inches|feet|hours?|minutes?|seconds?|days?|sq)\b", re.IGNORECASE)


def strip_figures(problem: str) -> str:
    return _FIGURE.sub(" ", problem)


def is_multiple_choice(problem: str, answer: str) -> bool:
    """Options labelled (A), (B), ...; "which of the following"; or a letter as the gold.

    Drops "What is 2+2? (A) 3 (B) 4 (C) 5" (gold "B") and "Which of the following is
    prime: 4, 6, 7?"; keeps "Point (A) is at the origin. Find AB." (one label only).
    """
    labels = {a or b or c for a, b, c in _CHOICE_LABEL.findall(strip_figures(problem))}
    return {"A", "B"} <= labels or bool(_WHICH_OF.search(problem)) or bool(_LETTER_ANSWER.match(answer))


def is_proof(problem: str, answer: str) -> bool:
    """Asks for a proof: "Prove that n^2 + n is even." or "... . Show that f is injective."

    Keeps "The census numbers show that the count falls by 40% a year. In which year ...?"
    and "Arrange the letters of the word PROOF."
    """
    text = strip_figures(problem)
    return bool(_PROVE.search(text) or _PROOF_WORD.search(text))


def is_multi_part(problem: str, answer: str) -> bool:
    """Two or more labelled parts that each ask something: "(a) Find x. (b) What is y?",
    "(1) Find the intervals where f increases; (2) find the range of a.", "(Ⅰ) ... (Ⅱ) ...",
    or "1. Find x.\n2. Find y." with the labels at line starts.

    Keeps labelled conditions: "f satisfies (i) f(1) = 2 and (ii) f(x+1) = f(x) + 3.
    Find f(10)." asks one question (only the last part's first sentence is read as asking);
    keeps function arguments: "Given f(a) = 3 and f(b) = 5, find f(a+b)."
    """
    text = strip_figures(problem)
    labels = list(_PART_LABEL.finditer(text))
    if len(labels) < 2:
        return False
    # Each part's text after its label (a "2. " label would read as a sentence end).
    parts = [text[m.end() : nxt] for m, nxt in zip(labels, [m.start() for m in labels[1:]] + [len(text)])]
    # The last part runs to the end of the text, where the single question usually sits.
    asking = sum(bool(_ASKS.search(part)) for part in parts[:-1]) + bool(_ASKS.search(re.split(r"[.;]\s", parts[-1])[0]))
    return asking >= 2


def is_open_ended(problem: str, answer: str) -> bool:
    """Explain/describe questions, yes/no answers, or a gold answer in prose.

    Drops "Explain why the harmonic series diverges.", gold "Yes", and gold "the series
    diverges by comparison" (three or more words outside LaTeX commands and units); keeps
    "\\frac{3}{4}", "5 cm", "\\text{(2, 3)}".
    """
    if _OPEN_VERBS.search(problem) or _YES_NO.match(answer):
        return True
    text = _ANSWER_FILLER.sub(" ", re.sub(r"\\[a-zA-Z]+", " ", answer))
    return len(_WORD.findall(text)) >= 3


QUESTION_TYPE_FILTERS = {
    "multiple_choice": is_multiple_choice,
    "proof": is_proof,
    "multi_part": is_multi_part,
    "open_ended": is_open_ended,
}
