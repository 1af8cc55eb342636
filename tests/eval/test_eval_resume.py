"""Eval resume keys samples by what was asked, not by file name and id:
a different file with the same name draws its own samples, a corrected answer re-checks the
old responses, and a resumed run draws exactly the samples an uninterrupted one draws."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.data.problems import Problem, write_problems
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.eval.runner import Decoding, SampleStore, run_samples
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Completion, SamplingParams


class CharTokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


class SeedEcho:
    """Answers ``\\boxed{<prompt length>}`` and records the seed each completion was drawn with."""

    def __init__(self) -> None:
        self.drawn: dict[tuple[str, int], int | None] = {}
        self.calls = 0

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        self.calls += 1
        out = []
        for index, ids in enumerate(prompt_ids):
            for j in range(params.n):
                seeds = getattr(params, "seeds", None)
                seed = seeds[index * params.n + j] if seeds is not None else params.seed
                text = f"\\boxed{{{len(ids)}}} seed {seed}"
                out.append(Completion(index, [1] * len(text), [0.0] * len(text), text, "stop"))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")


PROBLEMS = [Problem("p1", "abc", "3"), Problem("p2", "hello", "5"), Problem("p3", "xy", "9")]
DECODING = Decoding(n=2, temperature=1.0, top_p=1.0, max_tokens=16)


def run(path: Path, problems, generator, **kwargs):
    store = SampleStore(path)
    try:
        return run_samples(problems, generator, CharTokenizer(), ExactMatchChecker(), "plain", DECODING, store, **kwargs)
    finally:
        store.close()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_different_file_with_the_same_ids_draws_its_own_samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    run(path, PROBLEMS, SeedEcho())
    other = [Problem("p1", "abcd", "4"), Problem("p2", "hello", "5"), Problem("p3", "z", "1")]
    again = SeedEcho()
    records = run(path, other, again)
    # p1 and p3 are other problems under the same ids: drawn anew; p2 is the same problem: kept.
    assert again.calls > 0
    assert [r.response.split()[0] for r in records] == ["\\boxed{4}"] * 2 + ["\\boxed{5}"] * 2 + ["\\boxed{1}"] * 2
    assert [r.correct for r in records] == [True] * 6
    assert [r.prompt for r in records] == ["abcd", "abcd", "hello", "hello", "z", "z"]


def test_a_corrected_answer_rechecks_the_old_responses(tmp_path):
    path = tmp_path / "samples.jsonl"
    first = run(path, PROBLEMS, SeedEcho())
    assert [r.correct for r in first if r.problem_id == "p3"] == [False, False]
    fixed = PROBLEMS[:2] + [Problem("p3", "xy", "2")]
    again = SeedEcho()
    records = run(path, fixed, again)
    assert again.calls == 0  # nothing redrawn: the responses do not depend on the answer
    assert [(r.gold, r.status, r.correct) for r in records if r.problem_id == "p3"] == [("2", "correct", True)] * 2
    assert [r.response for r in records] == [r.response for r in first]
    # The file holds one row per sample, with the new verdicts (a resume reads them back).
    rows = lines(path)
    assert len(rows) == 6
    assert [(r["gold"], r["correct"]) for r in rows if r["problem_id"] == "p3"] == [("2", True)] * 2


def test_seeds_follow_the_problem_and_sample_not_the_batch(tmp_path):
    whole, pieces = SeedEcho(), SeedEcho()
    a = run(tmp_path / "a.jsonl", PROBLEMS, whole, chunk_size=16)
    # Another batching, and a resume that finds one sample of p2 already there.
    run(tmp_path / "b.jsonl", PROBLEMS[1:2], pieces, chunk_size=1)
    rows = (tmp_path / "b.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "b.jsonl").write_text(rows[1])
    b = run(tmp_path / "b.jsonl", PROBLEMS, pieces, chunk_size=1)
    assert [(r.problem_id, r.sample_index, r.response) for r in a] == [(r.problem_id, r.sample_index, r.response) for r in b]
    assert len({r.response for r in a}) == 6  # every sample its own seed


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")


@pytest.mark.slow
def test_resumed_tiny_eval_draws_what_an_uninterrupted_one_draws(tmp_path, one_thread):
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=2).problems(6, seed=3, heldout=True))
    common = [
        "eval",
        "--data",
        str(data),
        "--mode",
        "sampled",
        "--n",
        "3",
        "--temperature",
        "1.0",
        "--top-p",
        "1.0",
        "--max-tokens",
        "8",
        "--checker",
        "exact",
        "--batch-size",
        "4",
    ]
    runner = CliRunner()
    whole = runner.invoke(app, [*common, "--out", str(tmp_path / "whole")], catch_exceptions=False)
    assert whole.exit_code == 0, whole.output
    # The interrupted run: a kill left 7 whole rows (two problems and one sample of a third)
    # and half of the eighth; the resume draws the other 11 in other batches.
    cut = tmp_path / "cut" / "sums" / "samples.jsonl"
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "cut")], catch_exceptions=False).exit_code == 0
    kept = cut.read_text().splitlines(keepends=True)
    cut.write_text("".join(kept[:7]) + kept[7][:30])
    resumed = runner.invoke(app, [*common, "--out", str(tmp_path / "cut")], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "11 to generate" in resumed.output

    def samples(folder: str) -> list[tuple[str, int, str]]:
        rows = lines(tmp_path / folder / "sums" / "samples.jsonl")
        return sorted((r["problem_id"], r["sample_index"], r["response"]) for r in rows)

    assert len(samples("whole")) == 18
    assert samples("cut") == samples("whole")
    assert len({response for _, _, response in samples("whole")}) > 3  # really sampled


@pytest.mark.slow
def test_eval_cli_another_file_of_the_same_name_and_a_corrected_answer(tmp_path, one_thread):
    """Both cases end to end: same --out, a different sums.jsonl, then a fix."""
    task = ArithmeticTask(num_operands=2, digits=1)
    first, second = tmp_path / "a" / "sums.jsonl", tmp_path / "b" / "sums.jsonl"
    write_problems(first, task.problems(2, seed=1, heldout=True))
    other = [Problem(p.id, p.problem.replace("+", "+1"), p.answer) for p in task.problems(2, seed=1, heldout=True)]
    write_problems(second, other)
    out = tmp_path / "eval"
    common = ["eval", "--max-tokens", "3", "--checker", "exact", "--out", str(out)]
    runner = CliRunner()
    assert runner.invoke(app, [*common, "--data", str(first)], catch_exceptions=False).exit_code == 0
    result = runner.invoke(app, [*common, "--data", str(second)], catch_exceptions=False)
    assert result.exit_code == 0 and "2 to generate" in result.output
    # The gold of the first problem is corrected to what the model answered: re-checked, not redrawn.
    rows = lines(out / "sums" / "samples.jsonl")
    mine = [r for r in rows if r["prompt"].count("+1")]
    assert len(mine) == 2
    answered = mine[0]["extracted"] or "0"
    write_problems(second, [Problem(other[0].id, other[0].problem, answered), other[1]])
    result = runner.invoke(app, [*common, "--data", str(second)], catch_exceptions=False)
    assert result.exit_code == 0 and "0 to generate" in result.output
    fixed = [r for r in lines(out / "sums" / "samples.jsonl") if r["key"] == mine[0]["key"]]
    assert len(fixed) == 1 and fixed[0]["gold"] == answered and fixed[0]["response"] == mine[0]["response"]
    summary = json.loads((out / "sums" / "summary.json").read_text())
    assert summary["problems"] == 2
