"""The curation pipeline end to end: streaming JSONL in, pool out, counts and examples per
filter, the difficulty filter through a Generator, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.curate.difficulty import DifficultySettings, pass_rates
from slowthink.curate.pipeline import CurateSettings, curate
from slowthink.curate.report import curation_report
from slowthink.data.problems import DataError
from slowthink.models.tiny import build_tokenizer
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Completion

BENCH = "Let $N$ be the number of ordered pairs $(a,b)$ of integers with $1 \\le a, b \\le 1000$ such that $a^2 + b^2$ is divisible by $7$. Find $N$ modulo $1000$."
ROWS = [
    {"id": "keep1", "problem": "Compute $17 \\cdot 23$.", "answer": "391"},
    {"id": "mc", "problem": "What is $2+2$? (A) 3 (B) 4 (C) 5", "answer": "4"},
    {"id": "proof", "problem": "Prove that $n^2+n$ is even.", "answer": "0"},
    {"id": "parts", "problem": "(a) Find $x$ if $2x=4$. (b) What is $x^2$?", "answer": "4"},
    {"id": "open", "problem": "Is 91 prime?", "answer": "No"},
    {"id": "badgold", "problem": "Find the value of $y$ when $y = 2$.", "answer": "?"},
    {"id": "keep2", "problem": "How many positive divisors does $360$ have?", "answer": 24},
    {"id": "dup", "problem": "Compute  $17\\cdot 23$.", "answer": "391"},
    {"id": "contaminated", "problem": BENCH.replace("1000", "1,000").replace(" ", "  "), "answer": "6"},
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_pipeline_keeps_the_good_rows_and_counts_every_drop(tmp_path):
    source = write_jsonl(tmp_path / "train.jsonl", ROWS)
    bench = write_jsonl(tmp_path / "aime24.jsonl", [{"id": "b1", "problem": BENCH, "answer": "6"}])
    stats = curate([source], tmp_path / "pool.jsonl", CurateSettings(), [bench])
    kept = [json.loads(line) for line in (tmp_path / "pool.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["keep1", "keep2"]
    assert kept[1]["answer"] == "24"  # a numeric gold becomes text
    assert dict(stats.dropped) == {
        "multiple_choice": 1,
        "proof": 1,
        "multi_part": 1,
        "open_ended": 1,
        "unparseable_answer": 1,
        "exact_duplicate": 1,
        "contaminated": 1,
    }
    assert stats.read == 9 and stats.kept == 2
    report = curation_report(stats, "test")
    assert "| contaminated | 1 |" in report and "copies aime24 problem b1: 100% of its 8-grams in the row" in report and "(repeats keep1)" in report
    assert not (tmp_path / "pool.jsonl.partial").exists()


def test_skip_and_bad_rows(tmp_path):
    source = write_jsonl(tmp_path / "train.jsonl", ROWS[:2])
    stats = curate([source], tmp_path / "pool.jsonl", CurateSettings(skip=["multiple_choice"]))
    assert stats.kept == 2
    with pytest.raises(DataError, match="unknown filter"):
        curate([source], tmp_path / "pool.jsonl", CurateSettings(skip=["typo"]))
    bad = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], {"id": "x", "question": "q"}])
    with pytest.raises(DataError, match=f"{bad}:2: 'problem' must be a non-empty string"):
        curate([bad], tmp_path / "pool2.jsonl")
    # A failed run leaves no pool behind (only its partial file).
    assert not (tmp_path / "pool2.jsonl").exists()


class ScriptedGenerator:
    """A Generator whose i-th prompt is answered right ``solved[i]`` times out of n."""

    def __init__(self, solved: list[int]):
        self.solved = solved

    def generate(self, prompt_ids, params):
        out = []
        for i in range(len(prompt_ids)):
            for j in range(params.n):
                text = "\\boxed{1}" if j < self.solved[i] else "\\boxed{0}"
                out.append(Completion(prompt_index=i, token_ids=[1], logprobs=[0.0], text=text, finish_reason="stop"))
        return out

    def update_weights(self, model):
        pass


def test_difficulty_drops_always_and_never_solved(tmp_path):
    tokenizer = build_tokenizer()
    settings = DifficultySettings(samples=4, template="chat")
    assert pass_rates(ScriptedGenerator([4, 0, 2]), tokenizer, ExactMatchChecker(), ["1+0", "1+0", "1+0"], ["1", "1", "1"], settings) == [
        1.0,
        0.0,
        0.5,
    ]
    rows = [{"id": f"p{i}", "problem": f"{i}+1", "answer": "1"} for i in range(5)]
    source = write_jsonl(tmp_path / "t.jsonl", rows)
    difficulty = (ScriptedGenerator([4, 0, 2, 1, 3]), tokenizer, ExactMatchChecker(), settings)
    stats = curate([source], tmp_path / "pool.jsonl", CurateSettings(difficulty_batch=2), [], difficulty)
    kept = [json.loads(line) for line in (tmp_path / "pool.jsonl").read_text().splitlines()]
    # Batches of 2 (then 1): the scripted generator sees prompts 0-1, 0-1, 0.
    assert stats.dropped["too_easy"] + stats.dropped["too_hard"] + stats.kept == 5
    assert all(0 < r["pass_rate"] < 1 for r in kept)
    assert stats.dropped["too_easy"] >= 1 and stats.dropped["too_hard"] >= 1


def test_cli_writes_pool_and_report(tmp_path):
    source = write_jsonl(tmp_path / "train.jsonl", ROWS)
    bench = write_jsonl(tmp_path / "aime24.jsonl", [{"id": "b1", "problem": BENCH, "answer": "6"}])
    result = CliRunner().invoke(
        app, ["curate", source, "--out", str(tmp_path / "pool.jsonl"), "--benchmark", bench, "--report", str(tmp_path / "r.md")]
    )
    assert result.exit_code == 0, result.output
    assert "kept 2 of 9 rows" in result.output
    assert "| exact_duplicate | 1 |" in (tmp_path / "r.md").read_text()
    result = CliRunner().invoke(app, ["curate", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 2 and "data file not found" in result.output


def test_cli_difficulty_model_scores_every_kept_row_with_the_named_model(tmp_path):
    """``--difficulty-model`` loads the model and runs the pass-rate filter through the command
    (the recipe builds the engine; nothing but the flags lives in the CLI)."""
    source = write_jsonl(tmp_path / "train.jsonl", ROWS[:2] + ROWS[6:7])
    result = CliRunner().invoke(
        app,
        ["curate", source, "--out", str(tmp_path / "pool.jsonl"), "--difficulty-model", "tiny", "--samples", "2", "--max-new-tokens", "4"],
    )
    assert result.exit_code == 0, result.output
    report = (tmp_path / "pool.md").read_text()
    assert "Difficulty filter: tiny." in report
    # The untrained tiny model solves nothing: every row that reaches the filter is too hard.
    assert "| too_hard | 2 |" in report and "kept 0 of 3 rows" in result.output
