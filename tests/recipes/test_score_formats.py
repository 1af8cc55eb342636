"""``slowthink score`` on other toolkits' outputs, each built in that tool's own layout;
per-problem pass@k / maj@n; exit codes for a file with nothing to score and a --out folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app


def run(*args: str):
    return CliRunner().invoke(app, ["score", *args, "--timeout", "5", "--workers", "1"])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def lighteval_detail(query: str, gold: str, texts: list[str], index: int) -> dict:
    """One row of a lighteval details file (Detail: doc, model_response, metric), as it saves them."""
    return {
        "doc": {
            "query": query,
            "choices": [gold],
            "gold_index": 0,
            "instruction": "",
            "task_name": "lighteval|math_500|0",
            "id": str(index),
            "num_asked_few_shots": 0,
            "num_effective_few_shots": 0,
            "generation_size": 32768,
            "stop_sequences": [],
            "num_samples": len(texts),
        },
        "model_response": {
            "input": f"<|user|>{query}<|assistant|>",
            "text": texts,
            "text_post_processed": None,
            "logprobs": [],
            "output_tokens": [[1, 2, 3]] * len(texts),
            "input_tokens": [4, 5],
            "truncated_tokens_count": 0,
            "padded_tokens_count": 0,
        },
        "metric": {"extractive_match": 1.0},
    }


def test_lighteval_details_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    # lighteval --save-details: OUT/details/MODEL/TIMESTAMP/details_TASK_TIMESTAMP.parquet
    folder = tmp_path / "details" / "org__model" / "2025-06-01T10-00-00.000000"
    folder.mkdir(parents=True)
    details = folder / "details_lighteval|math_500|0_2025-06-01T10-00-00.000000.parquet"
    rows = [
        lighteval_detail("1+1?", "2", [r"\boxed{2}", r"\boxed{2.0}", r"\boxed{3}", r"\boxed{3}"], 0),
        lighteval_detail("Half of 1?", r"\frac{1}{2}", [r"\boxed{0.5}", r"\boxed{\dfrac{1}{2}}", r"\boxed{1}", r"\boxed{7}"], 1),
    ]
    pq.write_table(pa.Table.from_pylist(rows), details)
    out = tmp_path / "scored.jsonl"
    result = run(str(details), "--out", str(out))  # the format is read from the .parquet name
    assert result.exit_code == 0, result.output
    scored = read_jsonl(out)
    assert [r["correct"] for r in scored] == [[True, True, False, False], [True, True, False, False]]
    assert scored[0]["doc"]["query"] == "1+1?" and scored[1]["line"] == 2
    # Two problems x 4 samples: pass@1 = 0.5, pass@4 = 1; maj@4 votes 2 and 2.0 as one answer (2 > 3's tie broken
    # by the first seen) and 0.5 with \dfrac{1}{2}.
    assert "pass@4 (per problem)" in result.stdout and "maj@4" in result.stdout
    assert _value(result.stdout, "maj@4") == 1.0 and _value(result.stdout, "pass@2 (per problem)") == pytest.approx(1 - 1 / 6, abs=1e-4)


def _value(table: str, label: str) -> float:
    line = next(line for line in table.splitlines() if label in line)
    return float(line.replace("│", " ").split()[-1])


def test_lm_eval_harness_samples_jsonl(tmp_path):
    # lm_eval --log_samples: OUT/MODEL/samples_TASK_TIMESTAMP.jsonl, one row per doc; with
    # `repeats: 3` its one request holds three responses: resps = [[r1, r2, r3]].
    folder = tmp_path / "org__model"
    folder.mkdir()
    samples = folder / "samples_minerva_math_algebra_2025-06-01T10-00-00.000000.jsonl"
    rows = []
    for doc_id, (answer, resps) in enumerate([("4", [r"\boxed{4}", r"\boxed{5}", r"\boxed{4}"]), ("9", [r"\boxed{8}", r"\boxed{8}", r"\boxed{9}"])]):
        rows.append(
            {
                "doc_id": doc_id,
                "doc": {"problem": "p", "solution": "s", "answer": answer, "level": "Level 1", "type": "Algebra"},
                "target": answer,
                "arguments": {
                    "gen_args_0": {"arg_0": "Problem: p\nAnswer:", "arg_1": {"until": ["Problem:"], "do_sample": True, "temperature": 0.6}}
                },
                "resps": [resps],
                "filtered_resps": [resps[0]],
                "filter": "none",
                "metrics": ["exact_match"],
                "doc_hash": "ab",
                "prompt_hash": "cd",
                "target_hash": "ef",
                "exact_match": 0.0,
            }
        )
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "scored.jsonl"
    result = run(str(samples), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert [r["correct"] for r in read_jsonl(out)] == [[True, False, True], [False, False, True]]
    # maj@3: doc 0 votes 4 (right), doc 1 votes 8 (wrong).
    assert _value(result.stdout, "maj@3") == 0.5 and _value(result.stdout, "pass@3 (per problem)") == 1.0


def test_openai_batch_output_with_golds(tmp_path):
    def line(custom_id: str, contents: list[str] | None, error: dict | None = None) -> dict:
        response = None
        if contents is not None:
            choices = [
                {"index": i, "message": {"role": "assistant", "content": c}, "logprobs": None, "finish_reason": "stop"}
                for i, c in enumerate(contents)
            ]
            body = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-x",
                "choices": choices,
                "usage": {},
                "system_fingerprint": "fp",
            }
            response = {"status_code": 200, "request_id": "req_1", "body": body}
        return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": response, "error": error}

    batch = tmp_path / "batch_abc_output.jsonl"
    rows = [
        line("q1", [r"\boxed{12}", r"\boxed{13}"]),
        line("q2", None, {"code": "server_error", "message": "overloaded"}),
        line("q3", [r"\boxed{5}"]),
    ]
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    golds = tmp_path / "golds.jsonl"
    golds.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in [("q1", "12"), ("q2", "1"), ("q3", "6")]))
    out = tmp_path / "scored.jsonl"
    result = run(str(batch), "--format", "openai-batch", "--golds", str(golds), "--out", str(out))
    assert result.exit_code == 0, result.output
    scored = read_jsonl(out)
    assert [r["status"] for r in scored] == [["correct", "wrong"], "error", ["wrong"]]
    assert "the request failed: overloaded" in scored[1]["error"] and "batch_abc_output.jsonl:2" in result.stderr


def test_rows_sharing_a_problem_id_give_pass_at_k_and_maj(tmp_path):
    # slowthink eval's samples.jsonl layout: one row per sample, problem_id shared, gold in "gold".
    rows = [
        ("a", "7", r"\boxed{7}"),
        ("a", "7", r"\boxed{7.0}"),
        ("a", "7", r"\boxed{5}"),
        ("b", "3", r"\boxed{4}"),
        ("b", "3", r"\boxed{4}"),
        ("b", "3", r"\boxed{3}"),
    ]
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps({"problem_id": p, "sample_index": i % 3, "gold": g, "response": r}) + "\n" for i, (p, g, r) in enumerate(rows)))
    result = run(str(src), "--answer-field", "gold", "--out", str(tmp_path / "o.jsonl"), "--pass-k", "3")
    assert result.exit_code == 0, result.output
    # a: 2 of 3 right, b: 1 of 3. pass@2 = mean(1, 1 - C(2,2)/C(3,2)) = mean(1, 2/3); maj@3: a right, b wrong.
    assert _value(result.stdout, "pass@2 (per problem)") == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert _value(result.stdout, "pass@3 (per problem)") == 1.0 and _value(result.stdout, "maj@3") == 0.5


@pytest.mark.parametrize("content", ["", json.dumps({"x": 1}) + "\n" + json.dumps({"answer": "1"}) + "\n"])
def test_a_file_with_no_scorable_row_exits_non_zero_with_a_summary(tmp_path, content):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    result = run(str(src), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 1
    assert "no row of" in result.stderr and "could be scored" in result.stderr
    assert "scored" in result.stdout  # the summary table is printed first
    if content:
        assert "the first: " in result.stderr and "in.jsonl:1:" in result.stderr


def test_out_that_is_a_directory_names_that_directory(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"answer": "1", "response": r"\boxed{1}"}) + "\n")
    folder = tmp_path / "results"
    folder.mkdir()
    result = run(str(src), "--out", str(folder))
    assert result.exit_code == 2
    assert f"--out {folder} is a directory" in result.stderr and ".tmp" not in result.stderr
    assert list(folder.iterdir()) == []
