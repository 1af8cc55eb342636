"""``slowthink eval --backend vllm``: the RL engine's code behind the eval command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from vllm_helpers import require_vllm  # noqa: E402

require_vllm()

from slowthink.cli import app  # noqa: E402
from slowthink.data.problems import write_problems  # noqa: E402
from slowthink.data.tiny_task import ArithmeticTask  # noqa: E402


@pytest.fixture
def problems(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    path = tmp_path / "tiny.jsonl"
    write_problems(path, ArithmeticTask().problems(5, seed=0, heldout=True))
    return path


def eval_rows(out: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["eval", "--out", str(out), "--checker", "exact", "--no-progress", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_greedy_eval_on_vllm_equals_the_hf_backend(tmp_path, problems):
    common = ["--data", str(problems), "--max-tokens", "16", "--limit", "4"]
    hf = eval_rows(tmp_path / "hf", *common, "--backend", "hf")
    vllm = eval_rows(tmp_path / "vllm", *common, "--backend", "vllm")
    fields = ("problem_id", "response", "num_tokens", "finish_reason", "status")
    assert len(vllm) == 4
    assert [{k: r[k] for k in fields} for r in vllm] == [{k: r[k] for k in fields} for r in hf]


def test_sampled_eval_on_vllm_resumes_to_what_one_run_draws(tmp_path, problems):
    """One seed per sample: a resumed eval draws what an uninterrupted one draws."""
    common = [
        "--data",
        str(problems),
        "--max-tokens",
        "12",
        "--backend",
        "vllm",
        "--mode",
        "sampled",
        "--n",
        "2",
        "--temperature",
        "1.0",
        "--top-p",
        "1.0",
    ]
    whole = eval_rows(tmp_path / "whole", *common, "--limit", "4")
    eval_rows(tmp_path / "parts", *common, "--limit", "2")
    parts = eval_rows(tmp_path / "parts", *common, "--limit", "4")
    assert len(whole) == 8 and len({r["response"] for r in whole}) > 1
    key = lambda r: (r["problem_id"], r["sample_index"])  # noqa: E731
    assert sorted((key(r), r["response"]) for r in parts) == sorted((key(r), r["response"]) for r in whole)
