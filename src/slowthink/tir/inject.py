"""Prefix injection (paper section 4.4): cut a long thought at a reasoning word and make the
teacher write code there.

The paper synthesised tool demonstrations from DeepSeek-R1-Distill-Qwen-32B, which did
not follow the instruction to use code: "we first obtain rollouts from the model and split
them into multiple parts. We then randomly select certain steps and inject a prefix (e.g.,
"Wait a minute, maybe I could use some code to double-check my reasoning.") to simulate
code integration [...] This process can be iteratively to include more code snippets."

The rules here (all pure, all tested by hand):

- **Split** (``split_thought``): a split point is the start of one of ``SPLIT_WORDS``
  written as a whole word with its capital letter ("Wait," "But" "Hmm"), the words R1-like
  models open a new step of thought with. Lower-case occurrences ("..., but ...") are in
  the middle of a sentence and do not split; neither does a word inside another word
  ("Butter", "Waiting", "Hmmm"). The word stays at the head of its piece, so joining the
  pieces gives back the text exactly. Only the thought is split: nothing at or after the
  end-of-thought marker ``</think>`` (when present), nothing at or after a code fence the
  teacher wrote on its own (that block never ran, and a kept block without output would
  teach code that is not executed), and nothing before ``start`` (the text already fixed
  by an earlier injection). A split point at 0 would make an empty first piece and is not
  one. Since a cut always drops the last piece, the kept text never reaches past these.
- **Cut** (``cut_index``): with ``n`` pieces, the cut is a piece index ``i`` drawn
  uniformly from ``[max(1, ceil(n / 3)), n - 1]``: pieces ``0 .. i-1`` are kept, piece ``i``
  (which begins with its split word) and everything after it are replaced. So at least a
  third of the pieces (and at least one) are kept and at least one is dropped; with fewer
  than two pieces there is no cut (``None``). The paper's "between n/3 and n".
- **Splice** (``splice``): the kept pieces, one of ``INJECTION_PREFIXES``, then
  ``"\\n```python\\n"``; the teacher writes the code from there until the closing fence
  (``close_code``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

# Words that open a new step of thought (section 4.4; the reflection and transition
# words of section 3.2).
SPLIT_WORDS: tuple[str, ...] = ("Wait", "But", "Alternatively", "Hmm", "Moreover", "Furthermore")
_SPLIT_RE = re.compile(r"\b(?:" + "|".join(SPLIT_WORDS) + r")\b")

# What the teacher is made to say before writing code. The first is the paper's own
# example; the others vary the wording so that the student does not learn one sentence.
INJECTION_PREFIXES: tuple[str, ...] = (
    "Wait a minute, maybe I could use some code to double-check my reasoning.",
    "Hmm, let me write a little Python code to verify this calculation.",
    "But I should double-check this with some code before going on.",
    "Alternatively, I could compute this directly with Python to confirm it.",
    "Wait, let me run some code to make sure this step is right.",
)

THOUGHT_END = "</think>"
CODE_FENCE = "```python"
CLOSING_FENCE = "```"


def split_points(text: str, start: int = 0, end_marker: str = THOUGHT_END) -> list[int]:
    """Offsets of the split words in ``text[start:end]``, ``end`` being the first of the
    end-of-thought marker and a code fence after ``start`` (see the module docstring)."""
    ends = [text.find(marker, start) for marker in (end_marker, CLOSING_FENCE) if marker]
    end = min([e for e in ends if e >= 0], default=len(text))
    return [m.start() for m in _SPLIT_RE.finditer(text, start, end) if m.start() > 0]


def split_thought(text: str, start: int = 0, end_marker: str = THOUGHT_END) -> list[str]:
    """``text`` in pieces, each after the first beginning with a split word; ``"".join``
    of the pieces is ``text``. An empty text is one empty piece."""
    bounds = [0, *split_points(text, start, end_marker), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def cut_index(n: int, rng: random.Random) -> int | None:
    """The index of the first dropped piece, uniform in ``[max(1, ceil(n/3)), n - 1]``;
    None when ``n < 2`` (nothing can be both kept and dropped)."""
    low = max(1, math.ceil(n / 3))
    if low >= n:
        return None
    return rng.randrange(low, n)


def splice(pieces: Sequence[str], cut: int, prefix: str) -> str:
    """The kept pieces, the injection prefix and an opened python fence: what the teacher
    continues from to write the code."""
    if not 1 <= cut < len(pieces):
        raise ValueError(f"cut {cut} must keep at least one of {len(pieces)} pieces and drop at least one")
    return "".join(pieces[:cut]) + prefix + "\n" + CODE_FENCE + "\n"


def close_code(generated: str) -> str | None:
    """The code the teacher wrote after an opened fence: everything before the first
    closing fence. None when the fence never closes (cut by the token limit or EOS) or
    the code is blank: there is nothing to run, so the injection failed."""
    end = generated.find(CLOSING_FENCE)
    if end < 0:
        return None
    code = generated[:end]
    return code if code.strip() else None
