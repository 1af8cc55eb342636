"""Data through Hugging Face datasets: every file kind, folders and splits, the column mapping,
bad input that names the file, row and column, and a Hub id offline that says how to fix it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from slowthink.data.problems import DataError, Problem
from slowthink.data.sft_tables import load_sft_table
from slowthink.data.table_problems import TableProblems, load_problems

datasets = pytest.importorskip("datasets")

ROWS = [
    {"uid": "a", "question": "1+1?", "final_answer": "2", "tests": ["assert f() == 2"]},
    {"uid": "b", "question": "2+3?", "final_answer": "5", "tests": []},
]
MAP = {"problem": "question", "answer": "final_answer", "id": "uid"}
# Mapped columns stay under their own names too (a reward function written for the data reads them).
EXPECTED = [Problem("a", "1+1?", "2", extra={**ROWS[0]}), Problem("b", "2+3?", "5", extra={**ROWS[1]})]


def write(tmp_path, kind: str):
    dataset = datasets.Dataset.from_list(ROWS)
    path = tmp_path / f"rows.{kind}"
    if kind == "parquet":
        dataset.to_parquet(str(path))
    elif kind == "json":
        path.write_text(json.dumps(ROWS))  # one JSON array
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "arrow":
        path = tmp_path / "saved"
        dataset.save_to_disk(str(path))
        path = next(path.glob("*.arrow"))
    elif kind == "folder":
        path = tmp_path / "folder"
        dataset.save_to_disk(str(path))
    return path


@pytest.mark.parametrize("kind", ["parquet", "json", "jsonl", "arrow", "folder"])
def test_every_kind_reads_the_same_problems_through_the_column_mapping(tmp_path, kind):
    problems = load_problems(write(tmp_path, kind), MAP)
    assert list(problems) == EXPECTED


def test_csv_and_dataset_dict_splits(tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text("question,final_answer\n1+1?,2\n2+3?,5\n")
    assert [p.answer for p in load_problems(csv, MAP | {"id": "question"})] == ["2", "5"]
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])})
    splits.save_to_disk(str(tmp_path / "dd"))
    assert len(load_problems(tmp_path / "dd", MAP)) == 2  # train by default
    assert len(load_problems(f"{tmp_path / 'dd'}@test", MAP)) == 1
    with pytest.raises(DataError, match="choose a split with .*@SPLIT; splits: train, test"):
        load_problems(f"{tmp_path / 'dd'}@validation", MAP)


def test_a_table_is_read_on_access_not_copied(tmp_path):
    problems = load_problems(write(tmp_path, "parquet"), MAP)
    assert isinstance(problems, TableProblems) and len(problems) == 2
    assert problems[-1].id == "b" and problems[0:1] == EXPECTED[:1]


def test_a_parquet_file_is_never_read_as_text(tmp_path):
    disguised = tmp_path / "looks_like.jsonl"
    disguised.write_bytes(write(tmp_path, "parquet").read_bytes())
    assert list(load_problems(disguised, MAP)) == EXPECTED
    broken = tmp_path / "broken.parquet"
    broken.write_text('{"problem": "p", "answer": "1"}\n')
    with pytest.raises(DataError, match=f"{broken}: not a parquet file"):
        load_problems(broken)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(write(tmp_path, "parquet").read_bytes()[:40])
    with pytest.raises(DataError, match=f"{cut}: cannot be read as parquet"):
        load_problems(cut)


@pytest.mark.parametrize(
    "rows,columns,message",
    [
        (ROWS, {}, "rows.parquet: no column 'problem' .*columns: uid, question, final_answer, tests"),
        (ROWS, {"problem": "question", "answer": "gold"}, "no column 'gold' \\(the column mapping reads answer from it\\)"),
        (
            [{"question": "q", "final_answer": "1"}, {"question": "q", "final_answer": None}],
            MAP | {"id": "question"},
            "rows.parquet row 2: column 'final_answer': the answer is missing",
        ),
        (
            [{"question": "q", "final_answer": "1"}, {"question": " ", "final_answer": "1"}],
            MAP | {"id": "question"},
            "rows.parquet row 2: column 'question': the problem is missing or empty",
        ),
        (
            [{"question": "q", "final_answer": [1]}],
            MAP | {"id": "question"},
            "column 'final_answer' holds list<item: int64>; an answer must be a string or a number",
        ),
    ],
)
def test_bad_tables_name_the_file_row_and_column(tmp_path, rows, columns, message):
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(DataError, match=message):
        load_problems(path, columns)


def test_jsonl_keeps_its_line_numbers_under_a_mapping(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=f"{path}:3: no column 'final_answer' \\(for answer\\)"):
        load_problems(path, MAP)


def test_sft_rows_from_a_parquet_of_chat_messages(tmp_path):
    chats = [{"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "gold": "1"}]
    path = tmp_path / "chat.parquet"
    datasets.Dataset.from_list(chats).to_parquet(str(path))
    assert load_sft_table(path, {"messages": "conversations", "answer": "gold"}) == [([{"role": "user", "content": "hi"}], "hello", "1", None)]
    with pytest.raises(DataError, match="no column 'prompt' \\(for prompt\\), 'response' \\(for response\\)"):
        load_sft_table(path)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("instruction,output\nsay hi,hi\n")
    assert load_sft_table(pairs, {"prompt": "instruction", "response": "output"}) == [("say hi", "hi", None, None)]


def test_a_hub_id_offline_and_not_cached_exits_2_naming_the_fix(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-m", "slowthink.cli", "eval", "--data", "someone/not-cached:main@test", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "cannot load Hub dataset someone/not-cached:main@test" in result.stderr
    assert "save_to_disk" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
