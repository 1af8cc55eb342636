"""Problems over a memory-mapped ``datasets`` table, checked column by column up front.

A parquet or Arrow pool of a million rows is never turned into a million ``Problem``
objects: ``TableProblems`` is a sequence that builds the problem of row ``i`` when it is
asked for (the sampler asks for a step's prompts only). So that a bad row still fails the
run before it starts, not at step 3,000, the whole table is checked first with Arrow's
column kernels, which stream over the memory-mapped chunks: a missing column, a null or
empty problem, a null answer and a column of the wrong type each name the file, the row
(from 1) and the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from slowthink.data.problems import DataError, Problem, _row_to_problem, rename_columns
from slowthink.data.tables import Table, open_table


class TableProblems(Sequence[Problem]):
    """``Problem`` of row ``i`` of ``table`` on access, with ``columns`` mapping fields to columns."""

    def __init__(self, table: Table, columns: Mapping[str, str]):
        self.table, self.columns = table, dict(columns)
        check_problem_table(table, self.columns)

    def __len__(self) -> int:
        return len(self.table)

    @overload
    def __getitem__(self, index: int) -> Problem: ...

    @overload
    def __getitem__(self, index: slice) -> list[Problem]: ...

    def __getitem__(self, index: int | slice) -> Problem | list[Problem]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        where = self.table.where(index)
        # Ids default to the row number from 1, as JSONL's default to the line number.
        return _row_to_problem(rename_columns(self.table.row(index), self.columns, where), where, index + 1)


def check_problem_table(table: Table, columns: Mapping[str, str]) -> None:
    """Raise ``DataError`` at the first row that cannot be a problem (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = table.columns or []
    problem_col, answer_col = columns.get("problem", "problem"), columns.get("answer", "answer")
    for name, column in (("problem", problem_col), ("answer", answer_col), ("id", columns.get("id"))):
        if column is not None and column not in present:
            how = (
                f"the column mapping reads {name} from it"
                if name in columns
                else f"name the column with the column mapping, e.g. data.columns={{{name}: NAME}} (eval: columns=...)"
            )
            raise DataError(f"{table.name}: no column '{column}' ({how}); columns: {', '.join(present)}")
    data = table.dataset.with_format("arrow")
    problems = data.data.column(problem_col)
    if not (pa.types.is_string(problems.type) or pa.types.is_large_string(problems.type)):
        raise DataError(f"{table.name}: column '{problem_col}' holds {problems.type}, not text; a problem must be a non-empty string")
    answers = data.data.column(answer_col)
    if not (pa.types.is_string(answers.type) or pa.types.is_large_string(answers.type) or _is_number(answers.type)):
        raise DataError(f"{table.name}: column '{answer_col}' holds {answers.type}; an answer must be a string or a number")
    empty = pc.or_kleene(pc.is_null(problems), pc.equal(pc.utf8_trim_whitespace(problems), ""))
    _fail_at_first(table, empty, f"column '{problem_col}': the problem is missing or empty")
    _fail_at_first(table, pc.is_null(answers), f"column '{answer_col}': the answer is missing")


def _is_number(type_: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)) and not pa.types.is_boolean(type_)


def _fail_at_first(table: Table, flags: Any, message: str) -> None:
    import pyarrow.compute as pc

    if not pc.any(flags).as_py():
        return
    row = pc.index(flags, True).as_py()
    raise DataError(f"{table.where(row)}: {message}")


def load_problems(path: str | Path, columns: Mapping[str, str] | None = None) -> Sequence[Problem]:
    """Problems of a JSONL file (a list), or of any other source ``data.tables`` reads (a
    ``TableProblems`` over the memory-mapped table); ``columns`` maps fields to columns.
    A malformed row raises ``DataError`` naming ``file:line`` (JSONL) or the row and column."""
    columns = dict(columns or {})
    table = open_table(path)
    if not len(table):
        raise DataError(f"{path}: no problems in file")
    if table.jsonl_rows is None:
        return TableProblems(table, columns)
    return [_row_to_problem(rename_columns(row, columns, f"{path}:{line}"), f"{path}:{line}", line) for line, row in table.jsonl_rows]
