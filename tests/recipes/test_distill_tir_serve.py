"""``slowthink distill-tir --backend openai`` against ``slowthink serve``, end to end.

The teacher is the tiny model fine-tuned (a few seconds of ``slowthink sft``) to answer
one question the way the ``tool`` prompt asks: a ```` ```python ```` block, then the
```` ```output ```` fence it is told the output comes in, then the answer. The test
starts the server on it and runs the documented command (``--served-model-name`` for the
server's name, ``--model`` for the tokenizer) with the still3 preset, whose own fence is
```` ```Output ````: the teacher's code must run in the sandbox, its output be spliced in
by the interpreter (the row's ``tool_spans`` say so), and the response be kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import load_config
from slowthink.data.problems import Problem, write_problems
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.training.checkpoint import latest_checkpoint

sys.path.insert(0, str(Path(__file__).parents[1]))
from serve_helpers import running_server  # noqa: E402

QUESTION = "What is 6*7?"
# What the teacher learns to write; the tool loop stops it at "```output" and the
# interpreter writes "\n42\n```\n".
RESPONSE = "```python\nprint(6 * 7)\n```\n```output\n42\n```\nSo \\boxed{42}"


def train_teacher(root: Path) -> Path:
    """The tiny model, fine-tuned on the one demonstration under the `tool` prompt."""
    rows = root / "teacher.jsonl"
    rows.write_text(json.dumps({"prompt": QUESTION, "response": RESPONSE}) + "\n")
    overrides = [
        f"run.output_dir={root / 'teacher'}",
        "run.torch_threads=1",
        "run.progress=false",
        "data.source=jsonl",
        f"data.train_file={rows}",
        "data.template=tool",
        "train.steps=60",
        "train.save_every=60",
        "train.batch_size=1",
        "train.micro_batch_size=1",
        "optim.lr=0.003",
        "optim.warmup_steps=0",
        "optim.schedule=constant",
    ]
    return latest_checkpoint(run_sft(load_config(SFTConfig, None, overrides)))


@pytest.mark.slow  # ~20 s of SFT, a server start, one distilled problem
def test_distill_tir_runs_and_keeps_the_code_of_a_served_teacher_that_follows_the_tool_prompt(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    teacher = train_teacher(tmp_path)
    data, out = tmp_path / "problems.jsonl", tmp_path / "tir.jsonl"
    write_problems(data, [Problem("p1", QUESTION, "42")])
    with running_server("--model", str(teacher), "--served-model-name", "teacher") as url:
        result = CliRunner().invoke(
            app,
            [
                "distill-tir",
                "--backend",
                "openai",
                "--base-url",
                url,
                "--served-model-name",
                "teacher",
                "--model",
                str(teacher),
                "--data",
                str(data),
                "--out",
                str(out),
                "--checker",
                "exact",
                "--source",
                "instruct",
                "--max-tokens",
                "120",
                "--no-progress",
                "sampling.temperature=0",
                "tools.preset=still3",
            ],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    assert "instruct: 1 generated, 1 kept; dropped: none" in result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    content = row["messages"][1]["content"]
    assert row["tool_statuses"] == ["ok"] and content == RESPONSE
    # The output block after the teacher's fence is the interpreter's, not the teacher's.
    assert [content[a:b] for a, b in row["tool_spans"]] == ["\n42\n```\n"]
    assert content[: row["tool_spans"][0][0]].endswith("```output")
