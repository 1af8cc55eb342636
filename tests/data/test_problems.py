"""Problem JSONL loading: good rows, blank lines, and bad rows that name ``file:line``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slowthink.data.problems import DataError, Problem, write_problems
from slowthink.data.table_problems import load_problems

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_lines(tmp_path, lines: list[str], name: str = "p.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_rows_load_with_defaults_and_numeric_answers(tmp_path):
    path = write_lines(
        tmp_path,
        [
            json.dumps({"id": "a", "problem": "1+1?", "answer": "2", "source": "s", "meta": {"level": 3}}),
            json.dumps({"problem": "x^2=4, x>0", "answer": 2}),
            json.dumps({"problem": "half", "answer": 0.5}),
        ],
    )
    problems = load_problems(path)
    assert problems[0] == Problem("a", "1+1?", "2", "s", {"level": 3})
    # Without an id the line number is the id; numbers become strings.
    assert problems[1] == Problem("2", "x^2=4, x>0", "2", "", {})
    assert problems[2].answer == "0.5" and problems[2].id == "3"


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = write_lines(tmp_path, ["", json.dumps({"problem": "p", "answer": "1"}), "   ", "", json.dumps({"problem": "q", "answer": "2"})])
    problems = load_problems(path)
    assert [p.id for p in problems] == ["2", "5"]


def test_write_then_load_round_trip(tmp_path):
    problems = [Problem("x", "what?", "\\frac{1}{2}", "src", {"k": [1, 2]}), Problem("y", "ünïcode", "π", "", {})]
    path = tmp_path / "sub" / "out.jsonl"
    write_problems(path, problems)
    assert load_problems(path) == problems
    assert "ünïcode" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "bad_line,message",
    [
        ('{"problem": "p", "answer": ', "not valid JSON"),
        ('{"problem": "p"}', "missing field(s) answer"),
        ('{"answer": "1"}', "missing field(s) problem"),
        ('{"problem": 3, "answer": "1"}', "'problem' must be a non-empty string"),
        ('{"problem": "  ", "answer": "1"}', "'problem' must be a non-empty string"),
        ('{"problem": "p", "answer": [1]}', "'answer' must be a string or a number, got list"),
        ('{"problem": "p", "answer": true}', "'answer' must be a string or a number, got bool"),
        ('{"problem": "p", "answer": "1", "meta": 5}', "'meta' must be an object"),
        ('["problem", "answer"]', "expected a JSON object, got list"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, bad_line, message):
    good = json.dumps({"problem": "p", "answer": "1"})
    path = write_lines(tmp_path, [good, "", bad_line, good])
    with pytest.raises(DataError) as info:
        load_problems(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=f"data file not found: {tmp_path / 'nope.jsonl'}"):
        load_problems(tmp_path / "nope.jsonl")
    path = write_lines(tmp_path, ["", ""])
    with pytest.raises(DataError, match=f"{path}: no problems in file"):
        load_problems(path)


def test_shared_aime24_loads():
    path = DATA / "benchmarks" / "aime24.jsonl"
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent")
    problems = load_problems(path)
    assert len(problems) == 30
    assert problems[0].id == "aime24-I-1" and problems[0].problem.startswith("Every morning Aya")
    assert all(p.answer.isdigit() for p in problems)  # AIME answers are integers 0-999


# --- one JSONL policy (data/jsonl.py) ---------------------------------------------------------


def write_bytes(tmp_path, data: bytes, name: str = "p.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def row(problem: str, answer: str = "1") -> bytes:
    return json.dumps({"problem": problem, "answer": answer}).encode() + b"\n"


def test_a_bare_carriage_return_is_not_a_line_break(tmp_path):
    # \r is JSON whitespace: the row is whole, and the next row is line 2.
    path = write_bytes(tmp_path, b'{"problem": "p",\r "answer": "1"}\n' + row("q"))
    problems = load_problems(path)
    assert [(p.id, p.problem) for p in problems] == [("1", "p"), ("2", "q")]


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = write_bytes(tmp_path, row("a") + b'{"problem": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: invalid UTF-8 at byte"):
        load_problems(path)


def test_deep_nesting_names_file_and_line(tmp_path):
    path = write_bytes(tmp_path, row("a") + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(DataError, match=rf"^{path}:2: JSON nested too deeply"):
        load_problems(path)


def test_a_last_line_cut_by_a_kill_is_reported_as_such(tmp_path):
    path = write_bytes(tmp_path, row("a") + b'{"problem": "b", "ans')
    with pytest.raises(DataError, match=rf"^{path}:2: last line cut short"):
        load_problems(path)


def test_lone_surrogates_are_written_and_read_back(tmp_path):
    problems = [Problem("x", "bad \udcff text", "1"), Problem("y", "ünïcode", "2")]
    path = tmp_path / "out.jsonl"
    write_problems(path, problems)
    assert load_problems(path) == problems
    assert "ünïcode" in path.read_text(encoding="utf-8")
