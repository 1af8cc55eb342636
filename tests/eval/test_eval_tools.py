"""``slowthink eval --tools python``: rows carry tool calls and statuses, summaries the tool
metrics, resume keys include the tool settings, and bad tool options are clear errors.

The tiny model writes no code (quality aside), so the counted values are checked on a
scripted generator inside the real tool loop and sandbox; the CLI runs on the tiny model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.data.problems import DataError, Problem, write_problems
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.eval.runner import Decoding, SampleStore, run_samples, tool_summary
from slowthink.rewards.verdict import ExactMatchChecker
from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig
from slowthink.sandbox import ProcessSandbox, SandboxConfig


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class CharTokenizer:
    """One id per character (code point + 1; 0 is EOS)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) + 1 for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i - 1) for i in ids if i > 0)


TOK = CharTokenizer()


class CodeWriter:
    """Problems that say "code" get a code block computing 2 + 3, then the boxed output
    (a guess of 4 when nothing ran); others get a bare wrong answer. Honours the loop's stop strings (kept in the text)."""

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        out = []
        for index, ids in enumerate(prompt_ids):
            prompt = TOK.decode(list(ids))
            if "```output\n" in prompt:
                text = "\n\\boxed{" + prompt.rsplit("```output\n", 1)[1].split("\n")[0] + "}"
            elif prompt.endswith("```output"):  # code not executed: no output to read, a guess
                text = "\n\\boxed{4}"
            elif "code" in prompt:
                text = "```python\nprint(2 + 3)\n```\n```output"
            else:
                text = "\\boxed{4}"
            stop = next((s for s in params.stop if s in text), None)
            ids_out = TOK.encode(text) + ([] if stop else [0])
            out.extend(Completion(index, ids_out, [0.0] * len(ids_out), text, "stop", stop_string=stop) for _ in range(params.n))
        return out

    def update_weights(self, model: object) -> None:
        raise AssertionError("not used")


PROBLEMS = [Problem("coded", "code: 2+3", "5"), Problem("plain", "2+3", "5")]


def run_with_tools(tmp_path: Path, execute: bool) -> tuple[list, SampleStore]:
    store = SampleStore(tmp_path / "samples.jsonl")
    with ProcessSandbox(SandboxConfig(preload=())) as box:
        loop = ToolLoop(CodeWriter(), box if execute else None, TOK, ToolLoopConfig(execute=execute))
        records = run_samples(PROBLEMS, loop, TOK, ExactMatchChecker(), "plain", Decoding(1, 0.0, 1.0, 64), store, record_tools=True)
    store.close()
    return records, store


def test_rows_carry_tool_calls_and_the_summary_counts_them(tmp_path):
    records, store = run_with_tools(tmp_path, execute=True)
    written = rows(tmp_path / "samples.jsonl")
    assert [(r["problem_id"], r["tool_calls"], r["tool_statuses"], r["correct"]) for r in written] == [
        ("coded", 1, ["ok"], True),
        ("plain", 0, [], False),
    ]
    assert written[0]["response"] == "```python\nprint(2 + 3)\n```\n```output\n5\n```\n\n\\boxed{5}"
    assert tool_summary(records, store) == {
        "tools/tool_calls_per_response": 0.5,
        "tools/responses_with_tools": 1,
        "tools/responses_without_tools": 1,
        "tools/accuracy_with_tools": 1.0,
        "tools/accuracy_without_tools": 0.0,
        "tools/status/ok": 1,
    }
    # Read back on resume, the stored statuses give the same summary.
    again = SampleStore(tmp_path / "samples.jsonl")
    assert tool_summary(records, again) == tool_summary(records, store)
    again.close()


def test_code_written_but_not_executed_counts_as_no_tool_use(tmp_path):
    records, store = run_with_tools(tmp_path, execute=False)
    assert [r["tool_statuses"] for r in rows(tmp_path / "samples.jsonl")] == [["not_executed"], []]
    summary = tool_summary(records, store)
    assert summary["tools/status/not_executed"] == 1 and summary["tools/responses_with_tools"] == 0
    assert summary["tools/tool_calls_per_response"] == 0.5


def test_tool_summary_refuses_rows_drawn_without_tools(tmp_path):
    store = SampleStore(tmp_path / "samples.jsonl")
    records = run_samples(PROBLEMS[:1], CodeWriter(), TOK, ExactMatchChecker(), "plain", Decoding(1, 0.0, 1.0, 64), store)
    with pytest.raises(DataError, match="problem 'coded' sample 0 was drawn without tools"):
        tool_summary(records, store)
    store.close()


@pytest.fixture
def sums(tmp_path) -> Path:
    path = tmp_path / "sums.jsonl"
    write_problems(path, ArithmeticTask(num_operands=2, digits=1).problems(2, seed=1, heldout=True))
    return path


def test_tiny_model_with_tools_writes_tool_fields_and_resume_checks_tool_settings(tmp_path, sums):
    out = tmp_path / "eval"
    common = ["--data", str(sums), "--max-tokens", "6", "--checker", "exact", "--template", "plain", "--out", str(out)]
    result = invoke(*common, "--tools", "python", "--tool-preset", "still3", "--max-tool-calls", "2")
    assert result.exit_code == 0, result.output
    assert "calls/response" in result.output
    for row in rows(out / "sums" / "samples.jsonl"):
        assert row["tool_calls"] == len(row["tool_statuses"])
    summary = json.loads((out / "sums" / "summary.json").read_text())
    assert summary["tools/responses_with_tools"] + summary["tools/responses_without_tools"] == 2
    assert {"tools/tool_calls_per_response", "tools/accuracy_with_tools", "tools/accuracy_without_tools"} <= set(summary)
    run = json.loads((out / "run.json").read_text())
    assert (run["tools"], run["tool_preset"], run["max_tool_calls"], run["tools_execute"]) == ("python", "still3", 2, True)

    # Same settings resume (nothing to draw); other tool settings are refused, naming the key.
    result = invoke(*common, "--tools", "python", "--tool-preset", "still3", "--max-tool-calls", "2")
    assert result.exit_code == 0 and "2 to generate" not in result.output and "0 to generate" in result.output
    result = invoke(*common, "--tools", "python", "--tool-preset", "still3", "--max-tool-calls", "2", "--tools-no-exec")
    assert result.exit_code == 2 and "tools_execute=True; this run asks tools_execute=False" in result.output
    result = invoke(*common, "--tools", "python", "--max-tool-calls", "2")
    assert result.exit_code == 2 and "tool_preset='still3'; this run asks tool_preset='default'" in result.output
    result = invoke(*common)
    assert result.exit_code == 2 and "tools='python'; this run asks tools='none'" in result.output


def test_a_folder_from_a_run_without_tools_is_not_resumed_with_tools(tmp_path, sums):
    out = tmp_path / "eval"
    common = ["--data", str(sums), "--max-tokens", "2", "--checker", "exact", "--template", "plain", "--out", str(out)]
    assert invoke(*common).exit_code == 0
    # A run.json written before the tool keys existed means "no tools" as well.
    run = json.loads((out / "run.json").read_text())
    for key in ("tools", "tool_preset", "max_tool_calls", "tools_execute"):
        del run[key]
    (out / "run.json").write_text(json.dumps(run))
    result = invoke(*common, "--tools", "python", "--tools-no-exec")
    assert result.exit_code == 2 and "tools='none'; this run asks tools='python'" in result.output


def test_unknown_preset_and_tool_options_without_tools_are_clear_errors():
    result = invoke("--data", "x.jsonl", "--tools", "python", "--tool-preset", "qwen")
    assert result.exit_code == 2 and "'tools.preset': Input should be 'default' or 'still3' (got 'qwen')" in result.output
    result = invoke("--data", "x.jsonl", "--tools-no-exec")
    assert result.exit_code == 2 and "--tool-preset, --max-tool-calls and --tools-no-exec need --tools python" in result.output
    result = invoke("--data", "x.jsonl", "--tools", "bash")
    assert result.exit_code == 2 and "tools" in result.output and "python" in result.output
