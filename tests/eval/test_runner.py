"""The sample runner: resume after a kill, the context budget, and errors that name the file/line."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from slowthink.data.problems import DataError, Problem
from slowthink.eval.runner import Decoding, SampleStore, check_unique_ids, count_missing, fingerprint, run_samples
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Completion, SamplingParams


class CharTokenizer:
    """One id per character: enough for the 'plain' template."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]


class ScriptedGenerator:
    """Answers ``\\boxed{<prompt length>}`` and records every call (the runner is under test)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        self.calls.append((len(prompt_ids), params))
        out = []
        for index, ids in enumerate(prompt_ids):
            for _ in range(params.n):
                text = f"\\boxed{{{len(ids)}}}"
                out.append(Completion(index, list(range(len(text))), [0.0] * len(text), text, "stop"))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")

    @property
    def samples_drawn(self) -> int:
        return sum(count * params.n for count, params in self.calls)


# Answers are the prompt lengths: "abc" (3) right, "hello" (5) right, "xy" wrong.
PROBLEMS = [Problem("p1", "abc", "3"), Problem("p2", "hello", "5"), Problem("p3", "xy", "9")]
DECODING = Decoding(n=2, temperature=1.0, top_p=1.0, max_tokens=16)


def run(store: SampleStore, generator: ScriptedGenerator, **kwargs):
    return run_samples(PROBLEMS, generator, CharTokenizer(), ExactMatchChecker(), "plain", DECODING, store, **kwargs)


def test_rows_hold_every_field_and_the_verdict(tmp_path):
    store = SampleStore(tmp_path / "samples.jsonl")
    records = run(store, ScriptedGenerator())
    store.close()
    assert [(r.problem_id, r.sample_index, r.correct) for r in records] == [
        ("p1", 0, True),
        ("p1", 1, True),
        ("p2", 0, True),
        ("p2", 1, True),
        ("p3", 0, False),
        ("p3", 1, False),
    ]
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert rows[4] == {
        "problem_id": "p3",
        "sample_index": 0,
        "prompt": "xy",
        "response": "\\boxed{2}",
        "num_tokens": 9,
        "finish_reason": "stop",
        "gold": "9",
        "extracted": "2",
        "status": "wrong",
        "correct": False,
        "key": fingerprint("xy"),
    }


def test_rerun_skips_finished_samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    first = ScriptedGenerator()
    store = SampleStore(path)
    run(store, first)
    store.close()
    assert first.samples_drawn == 6
    again = ScriptedGenerator()
    store = SampleStore(path)
    assert count_missing(PROBLEMS, 2, store, CharTokenizer(), "plain") == 0
    records = run(store, again)
    store.close()
    assert again.calls == [] and len(records) == 6
    assert len(path.read_text().splitlines()) == 6


def test_kill_mid_write_loses_only_the_cut_row(tmp_path):
    path = tmp_path / "samples.jsonl"
    store = SampleStore(path)
    run(store, ScriptedGenerator())
    store.close()
    lines = path.read_text().splitlines(keepends=True)
    # Three whole rows survive, the fourth was cut mid-line by the kill.
    path.write_text("".join(lines[:3]) + lines[3][:25])
    resumed = ScriptedGenerator()
    store = SampleStore(path)
    assert count_missing(PROBLEMS, 2, store, CharTokenizer(), "plain") == 3
    records = run(store, resumed)
    store.close()
    assert resumed.samples_drawn == 3
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6
    assert sorted((r["problem_id"], r["sample_index"]) for r in rows) == [(r.problem_id, r.sample_index) for r in records]


def test_a_broken_row_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    store = SampleStore(path)
    run(store, ScriptedGenerator())
    store.close()
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.raises(DataError, match=rf"{path}:2: not a sample row"):
        SampleStore(path)


def test_token_budget_is_cut_to_the_context(tmp_path):
    generator = ScriptedGenerator()
    store = SampleStore(tmp_path / "samples.jsonl")
    # A context of 12 leaves 12 - prompt tokens: "hello" 7, "abc" 9, "xy" 10 (all under max_tokens 16).
    run(store, generator, context_length=12)
    store.close()
    budgets = sorted(params.max_new_tokens for _, params in generator.calls)
    assert budgets == [7, 9, 10]


def test_prompt_longer_than_the_context_is_an_error(tmp_path):
    with pytest.raises(DataError, match="problem 'p2': its prompt has 5 tokens, the model's context is 5"):
        run(SampleStore(tmp_path / "samples.jsonl"), ScriptedGenerator(), context_length=5)


def test_duplicate_problem_ids_are_refused():
    with pytest.raises(DataError, match="file.jsonl: problem id 'a' appears twice"):
        check_unique_ids([Problem("a", "x", "1"), Problem("a", "y", "2")], "file.jsonl")
