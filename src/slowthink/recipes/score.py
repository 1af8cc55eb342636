"""``slowthink score FILE.jsonl --out SCORED.jsonl``: check saved responses against their golds.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

Reads rows with a gold answer and one response (or a list of responses), checks them all
with ``MathChecker`` (or the exact-match checker), and writes every row back in input
order with ``correct``, ``status`` and ``line`` (its input line number) added (lists when
the row has a list).

The input is read under the one JSONL policy of ``data.jsonl``: lines split on ``\\n`` only,
UTF-8 decoded per line. A row that cannot be read or used (invalid UTF-8, bad JSON, nesting
too deep, not an object, a missing or mistyped field, a last line cut short) does not stop
the run: it is reported on stderr with its line number and written to the output with
``status: "error"``, ``correct: false`` and an ``error`` message. Every non-blank input line
gets exactly one output row, in order. Only a missing input file, or an output path that is
the input itself (also through a hard or symbolic link), is fatal.

The output is written to a temp file beside ``--out`` and renamed over it at the end, so a
run that fails or is killed leaves any earlier output as it was.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import Field

from slowthink.config import StrictConfig
from slowthink.data.jsonl import JsonlRow, dumps_line, read_jsonl
from slowthink.durable import atomic_writer
from slowthink.progress import count_bar
from slowthink.rewards.verdict import STATUSES, Checker

# Rows checked per round trip to the pool (and per progress update).
CHUNK_ROWS = 64


@dataclass(frozen=True)
class Fields:
    """Where a row keeps its gold and its response(s)."""

    answer: str = "answer"
    response: str = "response"
    responses: str = "responses"


@dataclass
class _Row:
    line: int
    data: dict[str, Any] | None
    gold: str = ""
    responses: list[str] = field(default_factory=list)
    many: bool = False  # the row had a list of responses
    error: str = ""


@dataclass
class ScoreSummary:
    """Counts over samples (one response = one sample) and rows."""

    statuses: Counter = field(default_factory=Counter)
    rows: int = 0
    bad_rows: int = 0
    row_accuracies: list[float] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(self.statuses.values())

    @property
    def accuracy(self) -> float:
        """Mean correctness over all checked samples."""
        checked = self.samples - self.bad_rows
        return self.statuses["correct"] / checked if checked else 0.0

    @property
    def pass_at_1(self) -> float:
        """Mean over readable rows of the row's fraction of correct samples."""
        return sum(self.row_accuracies) / len(self.row_accuracies) if self.row_accuracies else 0.0


def _parse_row(read: JsonlRow, fields: Fields) -> _Row:
    """One input line -> a row to check, or a row carrying the reason it cannot be checked."""
    if read.error is not None:
        return _Row(read.line, None, error=read.error)
    data = read.value
    if not isinstance(data, dict):
        return _Row(read.line, None, error=f"expected a JSON object, got {type(data).__name__}")
    row = _Row(read.line, data)
    gold = data.get(fields.answer)
    if gold is None or isinstance(gold, (dict, list, bool)):
        row.error = f"missing or non-scalar gold field {fields.answer!r}"
        return row
    row.gold = str(gold)
    if fields.responses in data:
        responses = data[fields.responses]
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            row.error = f"field {fields.responses!r} must be a list of strings"
        row.responses, row.many = (responses if not row.error else []), True
    elif isinstance(data.get(fields.response), str):
        row.responses = [data[fields.response]]
    else:
        row.error = f"missing string field {fields.response!r} (or list field {fields.responses!r})"
    return row


def _read_rows(path: Path, fields: Fields) -> Iterator[_Row]:
    for read in read_jsonl(path):
        yield _parse_row(read, fields)


def _chunks(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _error_record(row: _Row, error: str) -> dict[str, Any]:
    record = dict(row.data) if row.data is not None else {}
    record.update(line=row.line, correct=[] if row.many else False, status="error", error=error)
    return record


def _write_chunk(chunk: list[_Row], checker: Checker, out: TextIO, summary: ScoreSummary, source: str) -> None:
    """Check every sample of the chunk's readable rows in one batch, then write the rows in order."""
    golds = [row.gold for row in chunk if not row.error for _ in row.responses]
    responses = [r for row in chunk if not row.error for r in row.responses]
    verdicts = iter(checker.check(golds, responses))
    for row in chunk:
        summary.rows += 1
        if row.error:
            print(f"{source}:{row.line}: {row.error}", file=sys.stderr)
            summary.bad_rows += 1
            summary.statuses["error"] += 1
            record = _error_record(row, row.error)
        else:
            mine = [next(verdicts) for _ in row.responses]
            summary.statuses.update(v.status for v in mine)
            if mine:
                summary.row_accuracies.append(sum(v.correct for v in mine) / len(mine))
            correct, status = [v.correct for v in mine], [v.status for v in mine]
            record = dict(row.data or {})
            record.update(line=row.line, correct=correct if row.many else correct[0], status=status if row.many else status[0])
        try:
            line = dumps_line(record)
        except (RecursionError, ValueError) as error:
            # Parsed, but too deep (or odd) to write back: the row keeps its place as an error.
            line = dumps_line(_error_record(_Row(row.line, None, many=row.many), f"cannot write the row back: {error}"))
        out.write(line)


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file: the same resolved path, or the same inode (hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def score_file(path: Path, out_path: Path, checker: Checker, fields: Fields = Fields(), progress: bool = False) -> ScoreSummary:
    """Score ``path`` into ``out_path`` with ``checker``; see the module docstring for the row rules."""
    if same_file(path, out_path):
        raise ValueError(f"--out {out_path} is the input file {path}; choose another output path")
    summary = ScoreSummary()
    # A run that fails or is killed leaves any earlier output as it was.
    with atomic_writer(out_path, "w", encoding="utf-8") as out:
        _score_into(path, out, checker, fields, summary, progress)
    return summary


def _score_into(path: Path, out: TextIO, checker: Checker, fields: Fields, summary: ScoreSummary, progress: bool) -> None:
    chunks = _chunks(_read_rows(path, fields), CHUNK_ROWS)
    if not progress:
        for chunk in chunks:
            _write_chunk(chunk, checker, out, summary, str(path))
        return
    from rich.console import Console

    with count_bar(Console(stderr=True), True, "checking", _count_rows(path)) as advance:
        for chunk in chunks:
            _write_chunk(chunk, checker, out, summary, str(path))
            advance(len(chunk))


def print_summary(summary: ScoreSummary, out_path: Path) -> None:
    """A rich table: samples per status, accuracy and pass@1."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"scored {summary.rows} rows, {summary.samples} samples -> {out_path}")
    table.add_column("status")
    table.add_column("samples", justify="right")
    table.add_column("share", justify="right")
    for status in STATUSES:
        count = summary.statuses[status]
        table.add_row(status, str(count), f"{count / summary.samples:.1%}" if summary.samples else "-")
    table.add_section()
    table.add_row("accuracy (mean over samples)", "", f"{summary.accuracy:.4f}")
    table.add_row("pass@1 (mean over rows)", "", f"{summary.pass_at_1:.4f}")
    if summary.bad_rows:
        table.add_row("unreadable rows (see stderr)", str(summary.bad_rows), "")
    Console().print(table)


class ScoreConfig(StrictConfig):
    """Everything ``slowthink score`` needs: a YAML file, FILE and the flags, or key=value overrides."""

    file: str
    """JSONL rows with a gold answer and a response (or a list of responses)."""
    out: str
    """Where to write the rows with 'correct' and 'status' added (never the input file)."""
    answer_field: str = "answer"
    """Field holding the gold answer."""
    response_field: str = "response"
    """Field holding one response."""
    responses_field: str = "responses"
    """Field holding a list of responses (wins over response_field)."""
    checker: Literal["math", "exact"] = "math"
    """math (math-verify in worker processes) or exact (string match)."""
    fallback: bool = False
    """Evaluation only: when nothing is boxed, also read 'the answer is X', the last $math$, the last number."""
    workers: int = Field(2, ge=1)
    """Checker worker processes (each uses one core)."""
    timeout: float = Field(5.0, gt=0)
    """Seconds one check may take before its worker is killed."""
