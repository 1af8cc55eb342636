"""The curation pipeline: rows stream from the sources through the filters into one JSONL pool.

Each row is dropped by the first filter that rejects it, in this order (cheap to costly):
question type (multiple choice, proof, multi-part, open-ended) -> unparseable gold ->
exact / near duplicate -> benchmark contamination -> difficulty (only with a model).
Nothing but the duplicate index, the benchmark n-grams and one difficulty batch is held
in memory, so a million-row source curates in a bounded footprint.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slowthink.config import StrictConfig
from slowthink.curate.answer import answer_unparseable
from slowthink.curate.decontaminate import BenchmarkIndex
from slowthink.curate.dedup import Deduplicator
from slowthink.curate.difficulty import DifficultySettings, difficulty_verdict, pass_rates
from slowthink.curate.question_type import QUESTION_TYPE_FILTERS
from slowthink.data.problems import DataError
from slowthink.durable import atomic_writer

FILTERS = (*QUESTION_TYPE_FILTERS, "unparseable_answer", "exact_duplicate", "near_duplicate", "contaminated", "too_easy", "too_hard")


class CurateSettings(StrictConfig):
    """Thresholds of the filters (docs/curation.md explains each)."""

    skip: list[str] = []
    """Filters to leave out, by name (see FILTERS), e.g. ["near_duplicate"]."""
    near_duplicate_threshold: float = 0.8
    """Near duplicates: Jaccard of token 3-gram sets at or above this (candidates from MinHash LSH, each verified)."""
    num_perm: int = 128
    """MinHash permutations: at 128 the LSH proposes a pair at the threshold with probability ~0.99 (curate/dedup.py)."""
    contamination_threshold: float = 0.5
    """Decontamination: share of one benchmark problem's n-grams found in the row (docs/curation.md)."""
    ngram: int = 8
    """n of the decontamination n-grams (normalised tokens)."""
    problem_key: str = "problem"
    """Field names of the sources' rows (Hugging Face datasets name them differently)."""
    answer_key: str = "answer"
    """Field of the gold answer."""
    examples: int = 3
    """Examples per filter shown in the report."""
    difficulty_batch: int = 32
    """Rows per difficulty batch (one generate call of k samples each)."""


@dataclass
class CurationStats:
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    sources: Counter = field(default_factory=Counter)  # rows read per source (file or dataset)
    kept_sources: Counter = field(default_factory=Counter)
    # Every contamination drop (not only the examples): the row and the benchmark problem it copies.
    contaminations: list[dict[str, str]] = field(default_factory=list)


def iter_source(source: str, settings: CurateSettings) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) of a source: ``hf:NAME[:SPLIT]`` (streamed from the Hub), or anything
    ``data.tables`` reads (a .jsonl/.parquet/.arrow/.csv/.json file, a dataset folder, a Hub id)."""
    if source.startswith("hf:"):
        name, _, split = source[3:].partition(":")
        try:
            import datasets
        except ImportError:
            raise DataError(f"{source}: reading Hugging Face datasets needs the 'datasets' package (pip install datasets)") from None
        for index, row in enumerate(datasets.load_dataset(name, split=split or "train", streaming=True)):
            yield f"{source}:{index}", dict(row)
        return
    # JSONL through its own reader (file:line), parquet / Arrow / CSV / JSON files, dataset folders
    # and Hub ids through datasets, memory-mapped (data/tables.py).
    from slowthink.data.tables import open_table

    table = open_table(source)
    for index, row in enumerate(table):
        yield table.where(index), row


def to_problem_row(where: str, row: Any, source: str, settings: CurateSettings) -> dict[str, Any]:
    """The row with ``problem`` and ``answer`` as text (and an id); a bad row names where it is."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    problem, answer = row.get(settings.problem_key), row.get(settings.answer_key)
    if not isinstance(problem, str) or not problem.strip():
        raise DataError(f"{where}: '{settings.problem_key}' must be a non-empty string")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str):
        raise DataError(f"{where}: '{settings.answer_key}' must be a string or a number")
    out = {k: v for k, v in row.items() if k not in (settings.problem_key, settings.answer_key)}
    out.update(problem=problem, answer=answer)
    # The line ("file:7") or row ("file row 7") of the source.
    out.setdefault("id", f"{Path(source).stem}-{re.split('[: ]', where)[-1]}")
    out.setdefault("source", Path(source).stem)
    return out


def first_rejection(
    row: dict[str, Any], settings: CurateSettings, dedup: Deduplicator | None, index: BenchmarkIndex | None
) -> tuple[str, str] | None:
    """(filter name, detail) of the first filter that drops the row, or None (it stays)."""
    problem, answer = row["problem"], row["answer"]
    for name, rejects in QUESTION_TYPE_FILTERS.items():
        if name not in settings.skip and rejects(problem, answer):
            return name, ""
    if "unparseable_answer" not in settings.skip and answer_unparseable(answer):
        return "unparseable_answer", f"gold {answer[:60]!r}"
    if dedup is not None and (dup := dedup.check(str(row["id"]), problem, answer)) is not None:
        if dup[0] not in settings.skip:
            return dup[0], f"repeats {dup[1]}"
    if index is not None and (hit := index.match(problem)) is not None:
        return "contaminated", f"copies {hit.benchmark} problem {hit.problem_id}: {100 * hit.overlap:.0f}% of its {index.n}-grams in the row"
    return None


def curate(
    sources: list[str],
    out_path: str | Path,
    settings: CurateSettings = CurateSettings(),
    benchmarks: list[str] = (),
    difficulty: tuple[Any, Any, Any, DifficultySettings] | None = None,
) -> CurationStats:
    """Stream ``sources`` through the filters into ``out_path`` (written atomically at the end).

    ``difficulty`` is (generator, tokenizer, checker, settings) to filter by pass rate.
    """
    unknown = sorted(set(settings.skip) - set(FILTERS))
    if unknown:
        raise DataError(f"unknown filter(s) to skip {unknown}; allowed: {', '.join(FILTERS)}")
    both = {"exact_duplicate", "near_duplicate"} <= set(settings.skip)
    dedup = None if both else Deduplicator(settings.near_duplicate_threshold, settings.num_perm)
    index = None
    if benchmarks and "contaminated" not in settings.skip:
        index = BenchmarkIndex(settings.ngram, settings.contamination_threshold)
        for path in benchmarks:
            index.add_jsonl(path)
    stats = CurationStats()
    pending: list[tuple[str, dict[str, Any]]] = []
    # Temp file + rename (durable.py): a failed run leaves no pool, a symlinked pool is written through.
    with atomic_writer(out_path, "w", encoding="utf-8") as out:
        for source in sources:
            for where, raw in iter_source(source, settings):
                row = to_problem_row(where, raw, source, settings)
                stats.read += 1
                stats.sources[source] += 1
                rejection = first_rejection(row, settings, dedup, index)
                if rejection is not None:
                    drop(stats, row, *rejection, settings.examples)
                elif difficulty is None:
                    keep(stats, row, out, source)
                else:
                    pending.append((source, row))
                    if len(pending) >= settings.difficulty_batch:
                        flush_difficulty(pending, difficulty, stats, out, settings.examples)
        if pending:
            flush_difficulty(pending, difficulty, stats, out, settings.examples)
    return stats


def keep(stats: CurationStats, row: dict[str, Any], out, source: str) -> None:
    out.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats.kept += 1
    stats.kept_sources[source] += 1


def drop(stats: CurationStats, row: dict[str, Any], name: str, detail: str, max_examples: int) -> None:
    stats.dropped[name] += 1
    if name == "contaminated":
        stats.contaminations.append({"id": str(row["id"]), "problem": row["problem"], "detail": detail})
    examples = stats.examples.setdefault(name, [])
    if len(examples) < max_examples:
        examples.append({"id": str(row["id"]), "problem": row["problem"], "answer": row["answer"], "detail": detail})


def flush_difficulty(pending: list[tuple[str, dict[str, Any]]], difficulty, stats: CurationStats, out, max_examples: int) -> None:
    generator, tokenizer, checker, settings = difficulty
    rows = [row for _, row in pending]
    rates = pass_rates(generator, tokenizer, checker, [r["problem"] for r in rows], [r["answer"] for r in rows], settings)
    for (source, row), rate in zip(pending, rates):
        verdict = difficulty_verdict(rate, settings)
        if verdict is None:
            keep(stats, {**row, "pass_rate": rate}, out, source)
        else:
            drop(stats, row, verdict, f"pass rate {rate:.2f} over {settings.samples} samples", max_examples)
    pending.clear()
