"""``slowthink score``: rows written back in order with verdicts, bad rows reported, the regression set."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app

CASES = Path(__file__).resolve().parents[3] / "shared" / "data" / "checker" / "mathverify_cases.jsonl"
# Measured: 231 of the 255 labelled cases agree (docs/checker.md lists the 24 others and why).
MIN_AGREEMENT = 231


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(*args: str):
    return CliRunner().invoke(app, ["score", *args, "--timeout", "2"])


def test_scores_single_and_multiple_responses_in_order(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            json.dumps({"id": 1, "answer": r"\frac{1}{2}", "response": r"so \boxed{0.5}"}),
            json.dumps({"id": 2, "answer": 3, "responses": [r"\boxed{3}", r"\boxed{4}", "no answer", r"\boxed{3}"]}),
            "",
            json.dumps({"id": 3, "answer": "7", "response": r"\boxed{3 or 7}"}),
        ],
    )
    result = run(str(src), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["correct"] is True and rows[0]["status"] == "correct"
    assert rows[1]["correct"] == [True, False, False, True]
    assert rows[1]["status"] == ["correct", "wrong", "no_answer", "correct"]
    assert rows[2]["status"] == "wrong"  # hedged
    # 6 samples, 3 correct; pass@1 = mean(1, 2/4, 0) = 0.5
    assert "0.5000" in result.stdout and "correct" in result.stdout


def test_renamed_fields(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [json.dumps({"gold": "2", "text": r"\boxed{2}"}), json.dumps({"gold": "2", "samples": [r"\boxed{1}"]})],
    )
    args = ["--answer-field", "gold", "--response-field", "text", "--responses-field", "samples"]
    result = run(str(src), "--out", str(tmp_path / "out.jsonl"), *args)
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["correct", ["wrong"]]


def test_bad_rows_are_reported_and_do_not_stop_the_others(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            json.dumps({"answer": "1", "response": r"\boxed{1}"}),
            '{"answer": "2", "response": ',  # truncated JSON
            json.dumps({"response": r"\boxed{3}"}),  # no gold
            json.dumps([1, 2]),  # not an object
            json.dumps({"answer": "4", "responses": [r"\boxed{4}", 5]}),  # a non-string response
            json.dumps({"answer": "5", "response": r"\boxed{5}"}),
        ],
    )
    out = tmp_path / "sub" / "out.jsonl"
    result = run(str(src), "--out", str(out))
    assert result.exit_code == 0
    for line, reason in [(2, "not valid JSON"), (3, "'answer'"), (4, "JSON object"), (5, "list of strings")]:
        assert f"in.jsonl:{line}: " in result.stderr and reason in result.stderr
    rows = read_jsonl(out)
    assert len(rows) == 6
    assert [r["status"] for r in rows] == ["correct", "error", "error", "error", "error", "correct"]
    assert rows[1] == {"line": 2, "correct": False, "status": "error", "error": rows[1]["error"]}
    assert rows[4]["correct"] == [] and rows[2]["response"] == r"\boxed{3}"  # readable fields kept


def test_missing_file_is_the_only_failure(tmp_path):
    result = run(str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@pytest.mark.slow
def test_agreement_with_mathverify_regression_set(tmp_path):
    if not CASES.is_file():
        pytest.skip(f"regression set {CASES} is absent")
    out = tmp_path / "scored.jsonl"
    result = run(str(CASES), "--out", str(out), "--answer-field", "gold", "--fallback")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert len(rows) == 255
    agree = sum(r["correct"] == r["expected"] for r in rows)
    assert agree >= MIN_AGREEMENT, f"{agree}/255 agree with math-verify's labels"


# --- the output never destroys the input ------------------------------------------------------


@pytest.mark.parametrize("how", ["same", "hardlink", "symlink", "dotted"])
def test_output_that_is_the_input_is_refused(tmp_path, how):
    src = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"answer": "1", "response": r"\boxed{1}"})])
    before = src.read_bytes()
    out = {"same": src, "dotted": tmp_path / "." / "in.jsonl"}.get(how, tmp_path / "out.jsonl")
    if how == "hardlink":
        out.hardlink_to(src)
    elif how == "symlink":
        out.symlink_to(src)
    result = run(str(src), "--out", str(out))
    assert result.exit_code == 2
    assert "is the input file" in result.stderr
    assert src.read_bytes() == before


def test_a_failed_run_leaves_an_existing_output_untouched(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [json.dumps({"answer": "1", "response": r"\boxed{1}"})])
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    # An unknown checker fails before anything is written.
    assert run(str(src), "--out", str(out), "--checker", "nope").exit_code == 2
    assert out.read_text() == "previous results\n"
    assert run(str(src), "--out", str(out)).exit_code == 0
    assert read_jsonl(out)[0]["status"] == "correct"
    # Written to a temp file and renamed: nothing else is left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


# --- one bad row never stops the run ----------------------------------------------------------


def test_every_row_gets_a_status_and_its_line_number(tmp_path):
    good = lambda gold, answer: json.dumps({"answer": gold, "response": rf"so \boxed{{{answer}}}"}).encode()  # noqa: E731
    lines = [
        good("1", "1"),
        json.dumps({"answer": "2", "response": "\udcff \\boxed{2}"}).encode(),  # a lone surrogate escape
        b"[" * 100_000 + b"]" * 100_000,  # nested too deeply for json
        b'{"answer": "3",\r "response": "\\\\boxed{3}"}',  # a bare \r is whitespace, not a break
        b'{"answer": "4", "response": "caf\xe9 \\\\boxed{4}"}',  # invalid UTF-8
        good("5", "6"),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    result = run(str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["status"] for r in rows] == ["correct", "correct", "error", "correct", "error", "wrong"]
    assert rows[1]["response"] == "\udcff \\boxed{2}"  # the surrogate survives the round trip
    assert "nested too deeply" in rows[2]["error"] and "invalid UTF-8" in rows[4]["error"]
    assert "in.jsonl:3: " in result.stderr and "in.jsonl:5: invalid UTF-8" in result.stderr


def test_a_huge_boxed_number_is_an_answer_and_wrong():
    from slowthink.rewards.math_checker import MathChecker
    from slowthink.rewards.verdict import ExactMatchChecker

    response = "the total is \\boxed{" + "7" * 2_000_000 + "}"
    with MathChecker(workers=1, timeout_s=5) as checker:
        assert checker.check(["7"], [response])[0].status == "wrong"
    assert ExactMatchChecker().check(["7"], [response])[0].status == "wrong"
