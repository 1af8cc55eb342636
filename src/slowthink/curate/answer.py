"""Gold answers the checker cannot parse (paper section 2: "answers [that] cannot be parsed
into digits using the SymPy library").

The pool trains against the project's own checker (slowthink.rewards): a gold answer that
its math-verify parse turns into nothing would score every response wrong. The gold goes
through exactly the path a check uses (``gold_span`` then ``parse_span``).
"""

from __future__ import annotations

import re

# Answers longer than this are prose or whole solutions, not a final answer to compare.
MAX_ANSWER_CHARS = 200
# math-verify reads bare prose as a product of symbols ("see the solution" -> s*e*e*...):
# two or more plain words (4+ letters, outside LaTeX commands and their first {argument}) are no value.
_TEXT_ARG = re.compile(r"\\[a-zA-Z]+\*?\{[^{}]*\}")  # \text{..}, \begin{pmatrix}, \mathrm{..}
_PLAIN_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{4,}\b")


def answer_unparseable(answer: str) -> bool:
    """True when the checker would read no value from the gold.

    Drops "", "?" and "see the solution above" (no math), keeps "\\frac{3}{4}", "(2, 3)", "10\\%".
    """
    from slowthink.rewards.equivalence import gold_span, install, parse_span

    if not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
        return True
    if len(_PLAIN_WORD.findall(_TEXT_ARG.sub(" ", answer))) >= 2 or not any(c.isalnum() for c in answer):
        return True
    install()  # quiet math-verify's logging, once per process
    span = gold_span(answer)
    return not span or not parse_span(span)
