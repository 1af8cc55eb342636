"""Which tool-using responses become training data (paper section 4.4).

The paper keeps a teacher's response only if "it includes a code snippet and provides
the correct answer". Made precise here, a response is kept when, in this order:

1. it wrote code (at least one tool call)               else ``no_code``
2. every code block it wrote was executed               else ``unexecuted_code``
   (a block left unrun, e.g. past ``max_tool_calls``, or one the loop never saw close,
   such as a fence followed by a single newline, would teach code with no output; with
   ``text`` given, the ```` ```python ```` fences the model wrote are counted against the
   tool calls; fences a cell printed, inside the calls' recorded spans, are not code)
3. at least one cell ran to the end (status ``ok``)     else ``no_successful_code``
4. with ``strict_cells``: every cell ran to the end     else ``failed_cell``
5. the response finished (EOS), not cut at the limit    else ``truncated``
6. the checker says the final answer is right           else ``wrong_answer``,
                                                        ``no_answer`` or ``check_<status>``

A cell that raised, timed out or ran out of memory is kept by default when another cell
of the response ran: the model then read the error (the paper's release shows the last
traceback line) and recovered, which is worth learning; ``strict_cells`` drops such
responses for a cleaner set. A dropped response is counted under the first reason it
fails, so the counts add up to the number of responses generated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slowthink.data.tool_spans import call_spans, pieces

NOT_EXECUTED = "not_executed"
CODE_FENCE = "```python"
# Every reason a response can be dropped for, in the order they are checked.
FILTER_REASONS: tuple[str, ...] = (
    "no_code",
    "unexecuted_code",
    "no_successful_code",
    "failed_cell",
    "truncated",
    "wrong_answer",
    "no_answer",
)


def drop_reason(
    tool_calls: Sequence[Mapping[str, Any]],
    finished: bool,
    verdict_status: str,
    strict_cells: bool = False,
    text: str | None = None,
) -> str | None:
    """Why this response is not training data, or None to keep it.

    ``tool_calls``: the tool loop's records (``{"status": ...}``); ``finished``: it ended
    on its own; ``verdict_status``: the checker's status ("correct", "wrong", ...);
    ``text``: the response, whose code fences must all be among the tool calls."""
    statuses = [call["status"] for call in tool_calls]
    written = max(len(statuses), model_code_fences(text, tool_calls)) if text is not None else len(statuses)
    if not written:
        return "no_code"
    if NOT_EXECUTED in statuses or written > len(statuses):
        return "unexecuted_code"
    if "ok" not in statuses:
        return "no_successful_code"
    if strict_cells and any(status != "ok" for status in statuses):
        return "failed_cell"
    if not finished:
        return "truncated"
    if verdict_status == "correct":
        return None
    if verdict_status == "wrong":
        return "wrong_answer"
    if verdict_status == "no_answer":
        return "no_answer"
    return f"check_{verdict_status}"


def model_code_fences(text: str, tool_calls: Sequence[Mapping[str, Any]]) -> int:
    """```` ```python ```` fences in the parts of ``text`` the model wrote (outside the
    calls' recorded spans): a cell that prints one wrote no code."""
    spans = call_spans(tool_calls)
    return sum(text[start:end].count(CODE_FENCE) for start, end, is_tool in pieces(text, spans) if not is_tool)
