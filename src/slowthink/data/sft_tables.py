"""SFT rows from any source ``data.tables`` reads, with a column mapping (``data.columns``).

A row is ``{"prompt", "response"}`` or ``{"messages": [...]}`` (chat messages, the last one
the assistant's response), with an optional ``answer`` for the long-CoT filter and optional
``tool_spans`` (what the interpreter wrote, as ``distill-tir`` records it) (``data/sft.py``). A dataset that names them otherwise maps them, e.g.
``{prompt: instruction, response: output}`` or ``{messages: conversations}``. JSONL files
keep their ``file:line`` errors; other rows are named ``file row N``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from slowthink.data.problems import DataError, check_column_mapping, rename_columns
from slowthink.data.sft import parse_sft_row, parse_tool_spans
from slowthink.data.tables import open_table
from slowthink.data.tool_spans import Span

# The fields an SFT column mapping may name.
SFT_FIELDS = ("prompt", "response", "messages", "answer")

SFTRecord = tuple[str | list[dict[str, str]], str, str | None, list[Span] | None]


def check_sft_columns(columns: Mapping[str, str]) -> dict[str, str]:
    return check_column_mapping(columns, SFT_FIELDS)


def load_sft_table(spec: str | Path, columns: Mapping[str, str] | None = None) -> list[SFTRecord]:
    """(prompt or messages, response, gold answer or None, tool spans or None) per row of ``spec``."""
    columns = dict(columns or {})
    table = open_table(spec)
    if table.columns is not None:
        _check_columns(table.name, table.columns, columns)
    records = []
    for index, row in enumerate(table):
        where = table.where(index)
        row = rename_columns(row, columns, where)
        if isinstance(row, dict) and row.get("messages") is None:
            row = {k: v for k, v in row.items() if k != "messages"}  # a table's absent messages column is null
        prompt, response = parse_sft_row(row, where)
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            raise DataError(f"{where}: column '{columns.get('answer', 'answer')}': the answer must be a string or a number")
        records.append((prompt, response, None if answer is None else str(answer), parse_tool_spans(row, response, where)))
    if not records:
        raise DataError(f"{spec}: no SFT rows in file")
    return records


def _check_columns(name: str, present: list[str], columns: Mapping[str, str]) -> None:
    """A table's schema is known up front: a mapped or needed column that is absent names itself."""
    missing = [f"'{source}' (for {field})" for field, source in columns.items() if source not in present]
    has_chat = columns.get("messages", "messages") in present
    if not missing and not has_chat:
        missing = [f"'{columns.get(f, f)}' (for {f})" for f in ("prompt", "response") if columns.get(f, f) not in present]
    if missing:
        raise DataError(
            f"{name}: no column {', '.join(missing)}; an SFT row needs prompt and response, or messages "
            f"(other names: data.columns={{prompt: NAME, response: NAME}}); columns: {', '.join(present)}"
        )
