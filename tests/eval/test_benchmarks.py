"""The benchmark registry: row mapping, local copies, and the errors people see offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from slowthink.data.problems import DataError
from slowthink.eval.benchmarks import BENCHMARK_NAMES, BENCHMARKS, load_benchmark, load_from_hub, rows_to_problems

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "benchmarks"
PAPER_BENCHMARKS = ("math500", "aime24", "aime25", "hmmt_feb25", "omni_math", "omni_math_500", "liveaops", "liveaops_519")


def test_registry_holds_the_papers_benchmarks():
    assert BENCHMARK_NAMES == PAPER_BENCHMARKS
    assert BENCHMARKS["math500"].hf_id == "HuggingFaceH4/MATH-500"
    assert BENCHMARKS["hmmt_feb25"].hf_id == "MathArena/hmmt_feb_2025"


def test_rows_map_onto_problems():
    rows = [
        {"problem": "1+1?", "answer": 2, "unique_id": "test/x/1.json", "subject": "Algebra", "level": 1, "solution": "..."},
        {"problem": "2+2?", "answer": "4", "unique_id": "test/x/2.json"},
    ]
    problems = rows_to_problems(rows, BENCHMARKS["math500"])
    assert [p.id for p in problems] == ["math500-test/x/1.json", "math500-test/x/2.json"]
    assert problems[0].answer == "2" and problems[0].source == "MATH-500"
    assert problems[0].meta == {"subject": "Algebra", "level": 1}


def test_answer_lists_keep_the_first_and_all_in_meta():
    rows = [{"question": "q", "answer": ["6", "6.0"], "idx": 3}]
    (problem,) = rows_to_problems(rows, BENCHMARKS["liveaops"])
    assert (problem.id, problem.answer, problem.meta["answers"]) == ("liveaops-3", "6", ["6", "6.0"])


def test_missing_column_names_the_row_and_the_columns():
    with pytest.raises(DataError, match=r"MathArena/aime_2025\[train\] row 1: no column 'answer' \(columns: problem\)"):
        rows_to_problems([{"problem": "a", "answer": "1"}, {"problem": "b"}], BENCHMARKS["aime25"])


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown benchmark 'gsm8k'; known: math500, aime24"):
        load_benchmark("gsm8k")


def test_local_copy_in_data_dir(tmp_path):
    with pytest.raises(DataError, match="aime24.jsonl not found"):
        load_benchmark("aime24", data_dir=tmp_path)
    if not SHARED.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED}")
    problems = load_benchmark("aime24", data_dir=SHARED)
    assert len(problems) == 30 and problems[0].id == "aime24-I-1" and problems[0].answer == "204"


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="'datasets' is installed")
def test_hub_without_datasets_says_how_to_work_offline():
    with pytest.raises(DataError, match=r"needs the 'datasets' package.*--data-dir DIR with math500.jsonl"):
        load_from_hub(BENCHMARKS["math500"])


def test_stills_subsets_have_their_own_names(tmp_path):
    # One name, one set: the full Hub sets never silently become STILL's subsets offline.
    assert BENCHMARKS["omni_math"].local_file == "omni_math.jsonl" and BENCHMARKS["omni_math"].hf_id == "KbsdJames/Omni-MATH"
    assert BENCHMARKS["liveaops"].local_file == "liveaops.jsonl"
    with pytest.raises(DataError, match="omni_math_500' is STILL's own subset, which is not on the Hugging Face Hub.*omni_math_num500.jsonl"):
        load_benchmark("omni_math_500")
    if not SHARED.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED}")
    assert len(load_benchmark("omni_math_500", data_dir=SHARED)) == 500
    assert len(load_benchmark("liveaops_519", data_dir=SHARED)) == 519
    with pytest.raises(DataError, match="omni_math.jsonl not found"):
        load_benchmark("omni_math", data_dir=SHARED)
