"""The monitors the paper reads its results from, computed over one batch of rollouts.

Response length (all / correct / incorrect, paper Table 4), completion ratio (finished
before the length limit, section 3.2), reasoning-keyword frequency per category
(Figure 4), train accuracy, and checker status counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

from slowthink.monitors.keywords import KEYWORD_CATEGORIES
from slowthink.rewards.keywords import count_keywords
from slowthink.rewards.verdict import STATUSES, Verdict


def _mean(values: Sequence[float]) -> float:
    return float(mean(values)) if values else float("nan")


def rollout_metrics(texts: Sequence[str], lengths: Sequence[int], finished: Sequence[bool], verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Accuracy, lengths, completion ratio, keyword frequency and status counts of a batch."""
    # zip() would silently pair the wrong responses' lengths and verdicts.
    if not len(texts) == len(lengths) == len(finished) == len(verdicts):
        raise ValueError(
            f"rollout_metrics needs one of each per response: got {len(texts)} texts, {len(lengths)} lengths, "
            f"{len(finished)} finished flags, {len(verdicts)} verdicts"
        )
    correct = [v.correct for v in verdicts]
    metrics = {
        "accuracy": _mean([float(c) for c in correct]),
        "response_length": _mean([float(n) for n in lengths]),
        "response_length_correct": _mean([float(n) for n, c in zip(lengths, correct) if c]),
        "response_length_incorrect": _mean([float(n) for n, c in zip(lengths, correct) if not c]),
        "completion_ratio": _mean([float(f) for f in finished]),
    }
    # Keyword frequency: mean occurrences per response, and the share of responses with any.
    for category, words in KEYWORD_CATEGORIES.items():
        counts = [count_keywords(t, words) for t in texts]
        metrics[f"keywords/{category}"] = _mean([float(c) for c in counts])
        metrics[f"keywords/{category}_ratio"] = _mean([float(c > 0) for c in counts])
    for status in STATUSES:
        metrics[f"check/{status}"] = float(sum(v.status == status for v in verdicts))
    return metrics
