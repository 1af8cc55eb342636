"""The evaluation benchmarks of the paper (section 2, "Evaluation Benchmarks") by name.

Each name maps to a Hugging Face dataset (id, config, split) and the columns that hold the
problem, the answer and an id. Loading from the Hub needs the optional ``datasets``
package and a network; offline, point ``--data-dir`` at a folder of JSONL files in the
shared format (``{"id","problem","answer","source","meta"}``), looked up by each
benchmark's ``local_file``, or pass any file with ``--data``.

The dataset ids were chosen as the copies most evaluation code uses (checked against
public evaluation repositories; the columns below are the ones those copies publish):

| name       | dataset                          | split | paper                                 |
|------------|----------------------------------|-------|---------------------------------------|
| math500    | HuggingFaceH4/MATH-500           | test  | MATH-OAI, 500 problems                |
| aime24     | HuggingFaceH4/aime_2024          | train | AIME 2024, 30 problems                |
| aime25     | MathArena/aime_2025              | train | AIME 2025, 30 problems                |
| hmmt_feb25 | MathArena/hmmt_feb_2025          | train | HMMT Feb. 2025 (MathArena split), 30  |
| omni_math  | KbsdJames/Omni-MATH              | test  | Omni-MATH, all 4,428 problems         |
| liveaops   | jojo23333/LiveAoPSBench-2024     | test  | LiveAoPSBench 2024, all problems      |
| omni_math_500 | (local file only)             |       | OMNI as the paper reports it: 500     |
| liveaops_519  | (local file only)             |       | LiveAOPS as the paper reports it: 519 |

The paper's OMNI and LiveAOPS numbers come from STILL's own integer-answer subsets (500
and 519 problems), which are not on the Hub: the full datasets are larger and contain
non-numeric answers. The subsets have their own names, so one name is always one set:
``omni_math_500`` and ``liveaops_519`` read STILL's files from ``--data-dir``, while
``omni_math`` and ``liveaops`` are the full sets, from the Hub or from a full copy in
``--data-dir`` (``omni_math.jsonl``, ``liveaops.jsonl``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowthink.data.problems import DataError, Problem
from slowthink.data.table_problems import load_problems


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where one benchmark lives and how its rows map onto ``Problem``."""

    name: str
    # None: not on the Hub (STILL's subsets); only ``--data-dir`` has it.
    hf_id: str | None
    split: str
    problem_field: str
    answer_field: str
    # Column holding a stable id; None uses the row index.
    id_field: str | None
    # File name of the shared-format copy inside a ``--data-dir`` folder.
    local_file: str
    source: str
    hf_config: str | None = None
    # Columns copied into ``Problem.meta`` when present.
    meta_fields: tuple[str, ...] = ()


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            "math500",
            "HuggingFaceH4/MATH-500",
            "test",
            "problem",
            "answer",
            "unique_id",
            "math500.jsonl",
            "MATH-500",
            meta_fields=("subject", "level"),
        ),
        BenchmarkSpec(
            "aime24", "HuggingFaceH4/aime_2024", "train", "problem", "answer", "id", "aime24.jsonl", "AIME 2024", meta_fields=("url", "year")
        ),
        BenchmarkSpec("aime25", "MathArena/aime_2025", "train", "problem", "answer", "problem_idx", "aime25.jsonl", "AIME 2025"),
        BenchmarkSpec("hmmt_feb25", "MathArena/hmmt_feb_2025", "train", "problem", "answer", "problem_idx", "hmmt_feb25.jsonl", "HMMT February 2025"),
        BenchmarkSpec(
            "omni_math",
            "KbsdJames/Omni-MATH",
            "test",
            "problem",
            "answer",
            None,
            "omni_math.jsonl",
            "Omni-MATH",
            meta_fields=("domain", "difficulty", "source"),
        ),
        BenchmarkSpec("omni_math_500", None, "test", "problem", "answer", "id", "omni_math_num500.jsonl", "Omni-MATH (STILL 500)"),
        BenchmarkSpec(
            "liveaops",
            "jojo23333/LiveAoPSBench-2024",
            "test",
            "question",
            "answer",
            "idx",
            "liveaops.jsonl",
            "LiveAoPSBench",
            meta_fields=("post_time",),
        ),
        BenchmarkSpec("liveaops_519", None, "test", "question", "answer", "id", "liveaops_2024_8_12_num.jsonl", "LiveAoPSBench (STILL 519)"),
    )
}
BENCHMARK_NAMES: tuple[str, ...] = tuple(BENCHMARKS)


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARK_NAMES)} (or pass --data FILE.jsonl)")
    return BENCHMARKS[name]


def _answer_text(value: Any, where: str) -> tuple[str, list[str]]:
    """The gold answer as a string; a list of answers (LiveAoPSBench) keeps the first, all in meta."""
    if isinstance(value, list):
        if not value:
            raise DataError(f"{where}: empty answer list")
        answers = [str(v) for v in value]
        return answers[0], answers
    if isinstance(value, bool) or value is None:
        raise DataError(f"{where}: answer must be a string or a number, got {value!r}")
    return str(value), []


def rows_to_problems(rows: Iterable[dict[str, Any]], spec: BenchmarkSpec) -> list[Problem]:
    """Map dataset rows onto ``Problem`` records using ``spec``'s columns; bad rows name their index."""
    problems = []
    for index, row in enumerate(rows):
        where = f"{spec.hf_id}[{spec.split}] row {index}"
        for column in (spec.problem_field, spec.answer_field):
            if column not in row:
                raise DataError(f"{where}: no column '{column}' (columns: {', '.join(sorted(row))})")
        answer, all_answers = _answer_text(row[spec.answer_field], where)
        meta = {k: row[k] for k in spec.meta_fields if k in row}
        if len(all_answers) > 1:
            meta["answers"] = all_answers
        raw_id = row.get(spec.id_field) if spec.id_field else None
        problem_id = f"{spec.name}-{raw_id if raw_id is not None else index}"
        problems.append(Problem(id=problem_id, problem=str(row[spec.problem_field]), answer=answer, source=spec.source, meta=meta))
    if not problems:
        raise DataError(f"{spec.hf_id}[{spec.split}]: no rows")
    return problems


def load_from_hub(spec: BenchmarkSpec) -> list[Problem]:
    """Download ``spec``'s dataset with ``datasets`` (optional dependency, needs a network)."""
    if spec.hf_id is None:
        raise DataError(
            f"benchmark '{spec.name}' is STILL's own subset, which is not on the Hugging Face Hub: use --data-dir DIR "
            f"with {spec.local_file}, or --data FILE.jsonl"
        )
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"benchmark '{spec.name}' loads from the Hugging Face Hub ({spec.hf_id}), which needs the "
            f"'datasets' package (pip install datasets); offline, use --data-dir DIR with {spec.local_file} "
            f"or --data FILE.jsonl"
        ) from None
    try:
        dataset = datasets.load_dataset(spec.hf_id, spec.hf_config, split=spec.split)
    except (OSError, ValueError, ConnectionError) as exc:
        raise DataError(
            f"cannot load benchmark '{spec.name}' from {spec.hf_id} (split {spec.split}): {exc}; "
            f"offline, use --data-dir DIR with {spec.local_file} or --data FILE.jsonl"
        ) from None
    return rows_to_problems(dataset, spec)


def load_benchmark(name: str, data_dir: str | Path | None = None) -> list[Problem]:
    """Problems of benchmark ``name``: from ``data_dir/<local_file>`` when given, else from the Hub."""
    spec = get_spec(name)
    if data_dir is not None:
        path = Path(data_dir) / spec.local_file
        if not path.is_file():
            raise DataError(f"benchmark '{name}': {path} not found (expected {spec.local_file} in --data-dir)")
        return load_problems(path)
    return load_from_hub(spec)
