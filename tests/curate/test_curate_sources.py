"""Curation reads a parquet file and a saved dataset folder as it reads JSONL, with the row
named in errors and in default ids; its problem_key / answer_key map other column names."""

from __future__ import annotations

import json

import pytest

from slowthink.curate.pipeline import CurateSettings, curate
from slowthink.data.problems import DataError

datasets = pytest.importorskip("datasets")

ROWS = [
    {"question": "Compute $17 \\cdot 23$.", "final_answer": "391"},
    {"question": "How many positive divisors does $360$ have?", "final_answer": "24"},
    {"question": "Prove that $n^2+n$ is even.", "final_answer": "0"},
]


def test_parquet_and_dataset_folder_sources_with_other_column_names(tmp_path):
    parquet = tmp_path / "mine.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(parquet))
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS[:1]).save_to_disk(str(folder))
    settings = CurateSettings(problem_key="question", answer_key="final_answer")
    stats = curate([str(parquet)], tmp_path / "pool.jsonl", settings, [])
    kept = [json.loads(line) for line in (tmp_path / "pool.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["mine-1", "mine-2"] and stats.dropped["proof"] == 1
    curate([str(folder)], tmp_path / "pool2.jsonl", settings, [])
    assert json.loads((tmp_path / "pool2.jsonl").read_text())["answer"] == "391"


def test_a_bad_table_row_names_its_file_and_row(tmp_path):
    parquet = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([ROWS[0], {"question": "", "final_answer": "1"}]).to_parquet(str(parquet))
    with pytest.raises(DataError, match=f"{parquet} row 2: 'question' must be a non-empty string"):
        curate([str(parquet)], tmp_path / "pool.jsonl", CurateSettings(problem_key="question", answer_key="final_answer"), [])
