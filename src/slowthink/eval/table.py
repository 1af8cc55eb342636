"""The table ``slowthink eval`` prints: one row per benchmark, and the tool-metrics line."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def tool_line(summary: dict[str, Any]) -> str:
    """One line of tool metrics: calls per response, statuses, accuracy with / without tools."""
    statuses = ", ".join(f"{k.removeprefix('tools/status/')} {v}" for k, v in summary.items() if k.startswith("tools/status/")) or "none"
    return (
        f"tools: {summary['tools/tool_calls_per_response']:.2f} calls/response ({statuses}); acc % with tools "
        f"{_percent(summary['tools/accuracy_with_tools'])} (n={summary['tools/responses_with_tools']}), without "
        f"{_percent(summary['tools/accuracy_without_tools'])} (n={summary['tools/responses_without_tools']})"
    )


def _length(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(console: Console, summaries: dict[str, dict[str, Any]]) -> None:
    """One row per benchmark: accuracies in percent, lengths in tokens (correct / incorrect)."""
    from rich import box
    from rich.table import Table

    table = Table(title="slowthink eval (accuracy %, lengths in tokens)", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    # Short headers: the table fits 80 columns. len ok / len bad: mean tokens of correct /
    # incorrect responses (Table 4); done: completion ratio; no ans: responses without an answer;
    # unchk: checks that timed out or failed (counted wrong; checked again on resume).
    for column in ("benchmark", "probs", "n", "pass@1", "maj@n", "pass@n", "len ok", "len bad", "done", "no ans", "unchk"):
        table.add_column(column, justify="left" if column == "benchmark" else "right", no_wrap=True, min_width=len(column))
    for name, s in summaries.items():
        n = s["samples_per_problem"]
        table.add_row(
            name,
            str(s["problems"]),
            str(n),
            _percent(s["pass@1"]),
            _percent(s.get(f"maj@{n}")),
            _percent(s.get(f"pass@{n}")),
            _length(s["response_length_correct"]),
            _length(s["response_length_incorrect"]),
            _percent(s["completion_ratio"]),
            str(s["check/no_answer"]),
            str(s.get("unchecked", 0)),
        )
    console.print(table)
