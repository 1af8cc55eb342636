"""Tool use of a batch of responses (section 4.4): calls per response, cell statuses, and
accuracy with and without tools; RL logs them each step and eval summarises them.
A completion is read only through its ``tool_calls`` (rollout/generator.py's ``Completion``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any


def tool_metrics(completions: Sequence[Any], correct: Sequence[bool]) -> dict[str, Any]:
    """Tool calls per response, status counts, and accuracy with and without tool use.

    A response "uses tools" when it has at least one executed call (status other than
    "not_executed"). Accuracies are None when no response falls in the group."""
    if len(completions) != len(correct):
        raise ValueError(f"{len(completions)} completions but {len(correct)} correctness flags")
    statuses = Counter(call["status"] for c in completions for call in c.tool_calls)
    used = [any(call["status"] != "not_executed" for call in c.tool_calls) for c in completions]
    with_tools = [ok for ok, u in zip(correct, used) if u]
    without = [ok for ok, u in zip(correct, used) if not u]
    n = len(completions)
    return {
        "tool_calls_per_response": sum(len(c.tool_calls) for c in completions) / n if n else 0.0,
        "responses_with_tools": len(with_tools),
        "responses_without_tools": len(without),
        "tool_status_counts": dict(sorted(statuses.items())),
        "accuracy_with_tools": sum(with_tools) / len(with_tools) if with_tools else None,
        "accuracy_without_tools": sum(without) / len(without) if without else None,
    }


def rollout_tool_metrics(completions: Sequence[Any], correct: Sequence[bool]) -> dict[str, float]:
    """``tool_metrics`` as an RL step logs them: ``tools/<metric>`` and ``tools/status/<status>``,
    floats, the accuracies that nothing measured left out."""
    summary = tool_metrics(completions, correct)
    metrics = {f"tools/status/{status}": float(count) for status, count in summary.pop("tool_status_counts").items()}
    metrics.update({f"tools/{k}": float(v) for k, v in summary.items() if v is not None})
    return metrics
