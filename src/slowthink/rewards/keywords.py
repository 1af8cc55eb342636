"""Reasoning-action keywords of the RRA reward (section 4.2.1), and the whole-word count.

The paper counts "however", "but", "wait", "verify", "alternatively" for the action reward
(Amax = 20). The monitoring categories of Figure 4 (reflection, verification, correction,
alternatives) live in ``slowthink.monitors.keywords``, which counts with ``count_keywords``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# Section 4.2.1: A = count of these in the response, RRA = min(A, Amax)/Amax ± 1.
ACTION_REWARD_KEYWORDS: tuple[str, ...] = ("however", "but", "wait", "verify", "alternatively")


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
