"""``slowthink eval`` end to end on CPU with the tiny model: outputs, resume, and errors for people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.data.problems import write_problems
from slowthink.data.tiny_task import ArithmeticTask

MATH500 = Path(__file__).resolve().parents[3] / "shared" / "data" / "benchmarks" / "math500.jsonl"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # ~5 s: a full eval run, then its resume
def test_tiny_model_on_math500_writes_all_outputs_and_resumes(tmp_path):
    if not MATH500.is_file():
        pytest.skip(f"shared benchmark data not found at {MATH500}")
    out = tmp_path / "eval"
    common = ["--data", str(MATH500), "--max-tokens", "4", "--out", str(out)]
    result = invoke(*common, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "2 problems x 1 samples, 2 to generate" in result.output
    assert "slowthink eval" in result.output and "math500" in result.output
    samples = rows(out / "math500" / "samples.jsonl")
    assert [(r["problem_id"], r["sample_index"]) for r in samples] == [("test/precalculus/807.json", 0), ("test/intermediate_algebra/1994.json", 0)]
    first = samples[0]
    assert first["prompt"].startswith("<|user|>Convert the point") and first["prompt"].endswith("<|assistant|>")
    assert first["num_tokens"] <= 4 and first["finish_reason"] in ("stop", "length")
    assert first["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first["status"] in ("wrong", "no_answer") and first["correct"] is False
    summary = json.loads((out / "math500" / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["samples_per_problem"] == 1 and summary["mode"] == "greedy"
    assert summary["greedy_accuracy"] == 0.0
    assert summary["check/wrong"] + summary["check/no_answer"] == 2
    assert json.loads((out / "summary.json").read_text())["math500"] == summary
    assert json.loads((out / "run.json").read_text())["max_tokens"] == 4

    # Resume: one more problem, only its sample is generated; the two old rows are kept as they were.
    result = invoke(*common, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "3 problems x 1 samples, 1 to generate" in result.output
    assert rows(out / "math500" / "samples.jsonl")[:2] == samples
    assert len(rows(out / "math500" / "samples.jsonl")) == 3

    # Other settings into the same folder are refused, naming the key.
    result = invoke("--data", str(MATH500), "--max-tokens", "5", "--out", str(out), "--limit", "1")
    assert result.exit_code == 2
    assert "holds samples drawn with max_tokens=4; this run asks max_tokens=5" in result.output


@pytest.mark.slow  # ~4 s of sampling
def test_sampled_mode_reports_pass_at_k_and_majority(tmp_path):
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=1).problems(3, seed=1, heldout=True))
    out = tmp_path / "eval"
    result = invoke(
        "--data", str(data), "--mode", "sampled", "--n", "4", "--max-tokens", "3", "--checker", "exact", "--template", "plain", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "sums" / "summary.json").read_text())
    assert summary["samples"] == 12 and summary["samples_per_problem"] == 4
    assert {"pass@1", "pass@2", "pass@4", "maj@4", "completion_ratio", "keywords/reflection_ratio"} <= set(summary)
    assert "greedy_accuracy" not in summary
    run = json.loads((out / "run.json").read_text())
    # The paper's sampled settings (section 4.4) are the defaults.
    assert (run["temperature"], run["top_p"], run["n"]) == (0.6, 0.95, 4)
    assert sorted({r["sample_index"] for r in rows(out / "sums" / "samples.jsonl")}) == [0, 1, 2, 3]


def test_malformed_data_row_exits_naming_file_and_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "1", "problem": "1+1", "answer": "2"}\n{"id": "2", "problem": "2+2"}\n')
    result = invoke("--data", str(data), "--checker", "exact", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert f"{data}:2: missing field(s) answer" in result.output


def test_greedy_with_samples_is_refused():
    result = invoke("--data", "x.jsonl", "--n", "4")
    assert result.exit_code == 2
    assert "--n/--temperature/--top-p need --mode sampled" in result.output


def test_benchmark_and_data_are_exclusive_and_names_are_checked():
    result = invoke("--benchmark", "gsm8k")
    assert result.exit_code == 2 and "unknown benchmark 'gsm8k'" in result.output
    result = invoke()
    assert result.exit_code == 2 and "give --benchmark NAME (repeatable) or --data FILE.jsonl" in result.output
