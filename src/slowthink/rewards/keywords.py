"""Reasoning-action keywords: the RRA reward's list (section 4.2.1) and the monitoring categories.

Must not import torch, transformers, modeling, rollout, training, recipes or the CLI (tests/test_layers.py).

Data, not logic: the paper counts "however", "but", "wait", "verify", "alternatively"
for the action reward (Amax = 20), and monitors keyword frequency by category
(section 3.2, Figure 4: reflection, verification, correction, alternatives).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

# Section 4.2.1: A = count of these in the response, RRA = min(A, Amax)/Amax ± 1.
ACTION_REWARD_KEYWORDS: tuple[str, ...] = ("however", "but", "wait", "verify", "alternatively")

# Section 3.2 / Figure 4: the reasoning actions whose frequency shows reasoning emerging.
KEYWORD_CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "reflection": ("wait", "hmm", "rethink", "re-examine", "reconsider"),
    "verification": ("verify", "double check", "double-check", "check again", "confirm"),
    "correction": ("however", "but", "mistake", "correct that", "actually"),
    "alternatives": ("alternatively", "another approach", "another way", "instead"),
}


@lru_cache(maxsize=64)
def _pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    # Whole words, case-insensitive; longest first so "double check" beats "check".
    alternatives = "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def count_keywords(text: str, keywords: Iterable[str]) -> int:
    """Number of whole-word, case-insensitive occurrences of any keyword in ``text``."""
    keywords = tuple(keywords)
    if not keywords:
        return 0
    return len(_pattern(keywords).findall(text))


def category_counts(text: str, categories: Mapping[str, tuple[str, ...]] = KEYWORD_CATEGORIES) -> dict[str, int]:
    return {name: count_keywords(text, words) for name, words in categories.items()}
