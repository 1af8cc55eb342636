"""The ``Problem`` record and its loader, whose errors name the file, the row and the column.

JSONL files are read under the one JSONL policy of ``data.jsonl`` (lines split on ``\\n``
only, UTF-8 per line, deep nesting and a cut last line reported): every unreadable line is a
``DataError`` naming ``file:line``. Parquet, Arrow, CSV and JSON files, dataset folders and
Hub ids are read through ``datasets`` (``data.tables``); their problems are built on access
from the memory-mapped table (``TableProblems``), after a column-wise check of the whole
table, so a large pool is never copied into Python objects.

A column mapping (``{"problem": "question", "answer": "final_answer", "id": "uid"}``) says
which of the source's columns hold a problem's fields. Every other column of a row travels
with it as ``Problem.extra``, for reward functions (``rewards/functions.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slowthink.data.jsonl import dumps_line, read_jsonl


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Problem:
    """One verifiable problem: ``{"id","problem","answer","source","meta"}`` per JSONL line,
    plus any other columns of its row (``extra``), written back as top-level fields."""

    id: str
    problem: str
    answer: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    # The row's other columns (unit tests, a difficulty, ...): given to reward functions.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "id": self.id, "problem": self.problem, "answer": self.answer, "source": self.source, "meta": self.meta}


# The fields a column mapping may name, and those a problem row must have.
PROBLEM_FIELDS = ("problem", "answer", "id")
_OWN_FIELDS = frozenset({"id", "problem", "answer", "source", "meta"})


def check_column_mapping(columns: Mapping[str, str], allowed: Sequence[str] = PROBLEM_FIELDS) -> dict[str, str]:
    """``columns`` if every key is a field it may map (a config validator's check)."""
    unknown = sorted(set(columns) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in the column mapping; allowed: {', '.join(allowed)} (each maps to a column name)")
    return dict(columns)


def rename_columns(row: Any, columns: Mapping[str, str], where: str) -> Any:
    """``row`` with each mapped column also under its field's name; a missing column names itself."""
    if not columns or not isinstance(row, dict):
        return row
    absent = [f"'{source}' (for {name})" for name, source in columns.items() if source not in row]
    if absent:
        raise DataError(f"{where}: no column {', '.join(absent)} as the column mapping says; the row's columns: {', '.join(map(str, row))}")
    # The source columns stay under their own names too: a reward function written for the
    # dataset (TRL's, say) reads them as it would there.
    renamed = {k: v for k, v in row.items() if k not in columns}
    renamed.update({name: row[source] for name, source in columns.items()})
    return renamed


def _row_to_problem(row: Any, where: str, index: int) -> Problem:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("problem", "answer") if k not in row]
    if missing:
        raise DataError(
            f"{where}: missing field(s) {', '.join(missing)}; a problem row needs 'problem' and 'answer' "
            "(other names: map them with the column mapping, e.g. data.columns={problem: question})"
        )
    if not isinstance(row["problem"], str) or not row["problem"].strip():
        raise DataError(f"{where}: 'problem' must be a non-empty string")
    answer = row["answer"]
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str):
        raise DataError(f"{where}: 'answer' must be a string or a number, got {type(answer).__name__}")
    meta = row.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: 'meta' must be an object")
    extra = {k: v for k, v in row.items() if k not in _OWN_FIELDS}
    source = row.get("source")
    return Problem(
        id=str(row.get("id", index)), problem=row["problem"], answer=answer, source="" if source is None else str(source), meta=meta, extra=extra
    )


def iter_jsonl(path: str | Path) -> Iterable[tuple[int, Any]]:
    """Yield (line number, parsed object) for each non-blank line; any unreadable line
    (bad JSON, invalid UTF-8, nesting too deep, a last line cut short) names file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    for row in read_jsonl(path):
        if row.error is not None:
            raise DataError(f"{path}:{row.line}: {row.error}")
        yield row.line, row.value


def write_problems(path: str | Path, problems: Iterable[Problem]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(dumps_line(problem.to_json()))
