"""``slowthink score FILE --out SCORED.jsonl``: check saved responses against their golds.

Reads rows with a gold answer and one response (or a list of responses), checks them all
with ``MathChecker`` (or the exact-match checker), and writes every row back in input
order with ``correct``, ``status`` and ``line`` (its input row number) added (lists when
the row has a list). Fields are paths into nested rows (``eval/field_path.py``), and other
toolkits' outputs are read in their own layout (``eval/formats.py``: lighteval details
parquet, lm-evaluation-harness ``samples_*.jsonl``, OpenAI batch output).

Rows sharing a problem id (``fields.id``), or one row's list of responses, are the samples
of one problem: the summary then gives pass@k and maj@n per problem as ``slowthink eval``
does, so scoring another toolkit's n samples per problem gives the same table.

The input is read under the one JSONL policy of ``data.jsonl``: lines split on ``\\n`` only,
UTF-8 decoded per line. A row that cannot be read or used (invalid UTF-8, bad JSON, nesting
too deep, not an object, a missing or mistyped field, a last line cut short, a failed
request) does not stop the run: it is reported on stderr with its line number and written
to the output with ``status: "error"``, ``correct: false`` and an ``error`` message. Every
non-blank input line gets exactly one output row, in order. A missing input file, an
output path that is the input itself (also through a hard or symbolic link) or a
directory is fatal; so is a file where no row could be scored (exit 1, after the summary).

The output is written to a temp file beside ``--out`` and renamed over it at the end, so a
run that fails or is killed leaves any earlier output as it was.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from slowthink.data.jsonl import JsonlRow, dumps_line
from slowthink.durable import atomic_writer
from slowthink.eval.field_path import PathError, resolve
from slowthink.eval.formats import count_rows, read_rows
from slowthink.progress import count_bar
from slowthink.recipes.score_config import Fields, ScoreConfig
from slowthink.rewards.verdict import STATUSES, Checker

# Rows checked per round trip to the pool (and per progress update).
CHUNK_ROWS = 64


@dataclass
class _Row:
    line: int
    data: dict[str, Any] | None
    gold: str = ""
    responses: list[str] = field(default_factory=list)
    many: bool = False  # the row had a list of responses
    error: str = ""
    problem: str | None = None


@dataclass
class ScoreSummary:
    """Counts over samples (one response = one sample) and rows, and each problem's samples."""

    statuses: Counter = field(default_factory=Counter)
    rows: int = 0
    bad_rows: int = 0
    row_accuracies: list[float] = field(default_factory=list)
    # problem id -> (correct, answer it votes with, status) of each of its samples, in input order.
    problems: dict[str, list[tuple[bool, str | None, str]]] = field(default_factory=dict)
    first_error: str = ""

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


def _gold(data: dict[str, Any], fields: Fields) -> str:
    """The row's gold as text; ``ValueError`` says why there is none."""
    if fields.golds is not None and fields.join is not None:
        try:
            key = str(resolve(data, fields.join))
        except PathError as exc:
            raise ValueError(f"no join field {fields.join!r} ({exc})") from None
        if key not in fields.golds:
            raise ValueError(f"no gold for {fields.join} {key!r} in --golds")
        return fields.golds[key]
    try:
        gold = resolve(data, fields.answer)
    except PathError as exc:
        raise ValueError(f"missing gold field {fields.answer!r} ({exc})") from None
    if gold is None or isinstance(gold, (dict, list, bool)):
        raise ValueError(f"missing or non-scalar gold field {fields.answer!r}")
    return str(gold)


def _responses(data: dict[str, Any], fields: Fields) -> tuple[list[str], bool]:
    """(responses, whether the row holds a list); ``ValueError`` says why there are none."""
    try:
        many = resolve(data, fields.responses)
    except PathError:
        many = None
    else:
        if not isinstance(many, list) or not all(isinstance(r, str) for r in many):
            raise ValueError(f"field {fields.responses!r} must be a list of strings")
        return many, True
    try:
        one = resolve(data, fields.response)
    except PathError as exc:
        raise ValueError(f"missing string field {fields.response!r} (or list field {fields.responses!r}): {exc}") from None
    if not isinstance(one, str):
        raise ValueError(f"missing string field {fields.response!r} (or list field {fields.responses!r})")
    return [one], False


def _failure(data: dict[str, Any], fields: Fields) -> str:
    """The reason a failed request gives (OpenAI batch rows with ``error`` set), else ""."""
    if fields.failure is None:
        return ""
    value = data.get(fields.failure)
    if value is None:
        return ""
    message = value.get("message", value) if isinstance(value, dict) else value
    return f"the request failed: {message}"


def _parse_row(read: JsonlRow, fields: Fields) -> _Row:
    """One input row -> a row to check, or a row carrying the reason it cannot be checked."""
    if read.error is not None:
        return _Row(read.line, None, error=read.error)
    data = read.value
    if not isinstance(data, dict):
        return _Row(read.line, None, error=f"expected a JSON object, got {type(data).__name__}")
    row = _Row(read.line, data)
    if fields.problem_id is not None:
        try:
            row.problem = str(resolve(data, fields.problem_id))
        except PathError:
            row.problem = None
    try:
        row.error = _failure(data, fields)
        if not row.error:
            row.gold = _gold(data, fields)
            row.responses, row.many = _responses(data, fields)
    except ValueError as exc:
        row.error = str(exc)
        row.many = row.many or _has_list(data, fields)
    return row


def _has_list(data: dict[str, Any], fields: Fields) -> bool:
    try:
        return isinstance(resolve(data, fields.responses), list)
    except PathError:
        return False


def _read_rows(path: Path, fields: Fields) -> Iterator[_Row]:
    for read in read_rows(path):
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
            summary.first_error = summary.first_error or f"{source}:{row.line}: {row.error}"
            record = _error_record(row, row.error)
        else:
            mine = [next(verdicts) for _ in row.responses]
            summary.statuses.update(v.status for v in mine)
            if mine:
                summary.row_accuracies.append(sum(v.correct for v in mine) / len(mine))
            _add_samples(summary, row, mine)
            correct, status = [v.correct for v in mine], [v.status for v in mine]
            record = dict(row.data or {})
            record.update(line=row.line, correct=correct if row.many else correct[0], status=status if row.many else status[0])
        try:
            line = dumps_line(record)
        except (RecursionError, ValueError, TypeError) as error:
            # Parsed, but too deep (or odd: bytes from a parquet file) to write back: the row keeps its place as an error.
            line = dumps_line(_error_record(_Row(row.line, None, many=row.many), f"cannot write the row back: {error}"))
        out.write(line)


def _add_samples(summary: ScoreSummary, row: _Row, verdicts: list) -> None:
    """Remember each sample under its problem (its id, else its own line) for pass@k and maj@n."""
    from slowthink.eval.metrics import UNCHECKED
    from slowthink.rewards.extract import extract_answer

    samples = summary.problems.setdefault(row.problem if row.problem is not None else f"line {row.line}", [])
    for response, verdict in zip(row.responses, verdicts):
        # A sample whose check did not finish still votes, with the answer read without the checker.
        answer = verdict.extracted if verdict.status not in UNCHECKED else extract_answer(response)
        samples.append((verdict.correct, answer, verdict.status))


def same_file(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file: the same resolved path, or the same inode (hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def score_file(path: Path, out_path: Path, checker: Checker, fields: Fields = Fields(), progress: bool = False) -> ScoreSummary:
    """Score ``path`` into ``out_path`` with ``checker``; see the module docstring for the row rules."""
    if same_file(path, out_path):
        raise ValueError(f"--out {out_path} is the input file {path}; choose another output path")
    if out_path.is_dir():
        raise IsADirectoryError(
            f"--out {out_path} is a directory; give the path of the file to write, e.g. {out_path / (path.stem + '.scored.jsonl')}"
        )
    fields.check()
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

    with count_bar(Console(stderr=True), True, "checking", count_rows(path)) as advance:
        for chunk in chunks:
            _write_chunk(chunk, checker, out, summary, str(path))
            advance(len(chunk))


def print_summary(summary: ScoreSummary, out_path: Path, checker: Checker | None = None, ks: tuple[int, ...] = ()) -> None:
    """A rich table: samples per status, accuracy and pass@1; per problem pass@k and maj@n
    when some problem has several samples (rows sharing a problem id, or a list of responses)."""
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
    per_problem = problem_metrics(summary, checker, ks)
    if per_problem:
        table.add_section()
        for key, value in per_problem.items():
            table.add_row(key, "", f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


def problem_metrics(summary: ScoreSummary, checker: Checker | None, ks: tuple[int, ...] = ()) -> dict[str, Any]:
    """pass@k and maj@n over problems, as ``slowthink eval`` reports them; {} when every
    problem has one sample. Problems with unequal sample counts use the smallest n for
    pass@k and vote over all their samples ("maj@all")."""
    from slowthink.eval.metrics import UNCHECKED, pass_k_values
    from slowthink.eval.passk import maj_at_n_correct, mean_pass_at_k
    from slowthink.eval.voting import answer_classes

    groups = list(summary.problems.values())
    sizes = [len(g) for g in groups]
    if not groups or max(sizes) < 2:
        return {}
    n = min(sizes)
    out: dict[str, Any] = {"problems": len(groups), "samples per problem": f"{n}" if n == max(sizes) else f"{n}-{max(sizes)}"}
    for k in pass_k_values(n, [k for k in ks if k <= n]):
        out[f"pass@{k} (per problem)"] = mean_pass_at_k([[c for c, _, _ in g] for g in groups], k)
    answers = [[a for _, a, _ in g] for g in groups]
    classes = answer_classes(answers, checker)
    votes = [
        maj_at_n_correct(a, [c for c, _, _ in g], key=m.__getitem__, checked=[s not in UNCHECKED for _, _, s in g])
        for a, g, m in zip(answers, groups, classes)
    ]
    out[f"maj@{n}" if n == max(sizes) else "maj@all"] = sum(votes) / len(votes)
    return out


def run_score(cfg: ScoreConfig, progress: bool = False) -> ScoreSummary:
    """Check ``cfg.file`` into ``cfg.out`` and print the summary; a missing input, an output over
    an input or a directory, or a bad field path or golds file is a ``ConfigError``."""
    from slowthink.config import ConfigError
    from slowthink.durable import check_output
    from slowthink.eval.formats import load_golds
    from slowthink.rewards.checkers import make_checker

    file, out = Path(cfg.file), Path(cfg.out)
    if not file.is_file():
        raise ConfigError(f"input file {file} does not exist")
    check_output(out, [file, cfg.fields.golds])  # the output over an input would destroy it (durable.py)
    if out.is_dir():
        # The atomic write's temp file used to be named instead of the path given.
        raise ConfigError(f"--out {out} is a directory; give the path of the file to write, e.g. {out / (file.stem + '.scored.jsonl')}")
    try:
        given = cfg.fields
        golds = load_golds(Path(given.golds), given.golds_id, given.golds_answer) if given.golds else None
        fields = cfg.row_fields(golds)
        fields.check()
    except (ValueError, OSError) as exc:  # a field path that does not parse, a golds file that cannot be read
        raise ConfigError(str(exc)) from None
    checker = make_checker(cfg.checker.kind, workers=cfg.checker.workers, timeout_s=cfg.checker.timeout, fallback=cfg.checker.answer_fallback)
    try:
        summary = score_file(file, out, checker, fields, progress=progress)
        print_summary(summary, out, checker, tuple(cfg.pass_k))
    finally:
        checker.close()
    return summary
