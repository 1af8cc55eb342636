"""Reasoning-action keywords by category, the monitor of section 3.2 (Figure 4).

The paper watches reasoning emerge as the frequency of reflection, verification, correction
and alternatives keywords. Counting a list is the same whole-word count the RRA reward uses
(``slowthink.rewards.keywords.count_keywords``), imported from there: a reward never reads a
monitor, so the arrow runs from here down.
"""

from __future__ import annotations

from collections.abc import Mapping

from slowthink.rewards.keywords import count_keywords

# Section 3.2 / Figure 4: the reasoning actions whose frequency shows reasoning emerging.
KEYWORD_CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "reflection": ("wait", "hmm", "rethink", "re-examine", "reconsider"),
    "verification": ("verify", "double check", "double-check", "check again", "confirm"),
    "correction": ("however", "but", "mistake", "correct that", "actually"),
    "alternatives": ("alternatively", "another approach", "another way", "instead"),
}


def category_counts(text: str, categories: Mapping[str, tuple[str, ...]] = KEYWORD_CATEGORIES) -> dict[str, int]:
    return {name: count_keywords(text, words) for name, words in categories.items()}
