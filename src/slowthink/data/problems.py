"""The ``Problem`` record and a JSONL loader whose errors name the file and line.

Must not import torch, transformers, rollout, training, recipes or the CLI (tests/test_layers.py).

Files are read under the one JSONL policy of ``data.jsonl`` (lines split on ``\\n`` only,
UTF-8 per line, deep nesting and a cut last line reported): here every unreadable line is a
``DataError`` naming ``file:line``, for eval's ``--data``, RL's and SFT's ``data.train_file``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slowthink.data.jsonl import dumps_line, read_jsonl


class DataError(ValueError):
    """A data file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Problem:
    """One verifiable problem: ``{"id","problem","answer","source","meta"}`` per JSONL line."""

    id: str
    problem: str
    answer: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _row_to_problem(row: Any, where: str, index: int) -> Problem:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("problem", "answer") if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; a problem row needs 'problem' and 'answer'")
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
    return Problem(id=str(row.get("id", index)), problem=row["problem"], answer=answer, source=str(row.get("source", "")), meta=meta)


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


def load_problems(path: str | Path) -> list[Problem]:
    """Read problems from JSONL; any malformed row raises ``DataError`` naming ``file:line``."""
    problems = [_row_to_problem(row, f"{path}:{lineno}", lineno) for lineno, row in iter_jsonl(path)]
    if not problems:
        raise DataError(f"{path}: no problems in file")
    return problems


def write_problems(path: str | Path, problems: Iterable[Problem]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for problem in problems:
            handle.write(dumps_line(problem.to_json()))
