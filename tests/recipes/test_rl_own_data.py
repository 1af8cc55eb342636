"""Bring your own data and reward: a parquet file and a saved dataset folder with other column
names train for 2 RL steps and evaluate; a reward function from a file is logged as
reward/NAME (also under 2 gloo ranks and in a parallel study); a wrong column exits 2 naming
it; samples are written every few steps and a resumed run never has a step's twice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import load_config
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_config import RLConfig
from slowthink.samples import read_samples, sample_steps
from slowthink.tracking import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import TINY_RL, tiny_rl_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "slowthink" / "configs"
COLUMNS = "data.columns={problem: question, answer: final_answer, id: uid}"
# A TRL-style reward function, unchanged: prompts, completions and the data's columns as keyword lists.
REWARD = """
def digits_reward(prompts, completions, final_answer=None, level=None, **kwargs):
    assert len(prompts) == len(completions) == len(level)
    return [sum(ch.isdigit() for ch in c) / (1 + len(c)) + 0.0 * lvl for c, lvl in zip(completions, level)]
"""


def own_rows(count: int, heldout: bool) -> list[dict]:
    """Tiny-task problems under other column names, with an extra column the reward reads."""
    problems = ArithmeticTask().problems(count, seed=0, heldout=heldout)
    return [{"uid": p.id, "question": p.problem, "final_answer": p.answer, "level": i % 3} for i, p in enumerate(problems)]


@pytest.fixture
def own_data(tmp_path):
    import datasets

    train = tmp_path / "train.parquet"
    datasets.Dataset.from_list(own_rows(32, heldout=False)).to_parquet(str(train))
    folder = tmp_path / "heldout_ds"
    datasets.Dataset.from_list(own_rows(6, heldout=True)).save_to_disk(str(folder))
    reward = tmp_path / "my_reward.py"
    reward.write_text(REWARD)
    return train, folder, reward


def own_overrides(train: Path, folder: Path, reward: Path) -> list[str]:
    return [
        "data.source=dataset",
        f"data.train_file={train}",
        f"data.eval_file={folder}",
        COLUMNS,
        f"reward.functions={{mine: '{reward}:digits_reward'}}",
        "reward.weights={correctness: 1.0, mine: 1.0}",
    ]


@pytest.mark.slow
def test_parquet_and_dataset_folder_with_other_columns_train_and_evaluate(tmp_path, own_data):
    train, folder, reward = own_data
    config = tiny_rl_config(tmp_path / "run", *own_overrides(train, folder, reward), "train.eval_every=2", "train.log_samples_every=1")
    run_dir = run_rl(config)
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(isinstance(r["reward/mine"], float) and r["reward/mine"] > 0 for r in rows[1:])
    assert "heldout/accuracy" in rows[-1]
    # The extra column reached the sample rows' problems, the ids came from the uid column.
    sample = read_samples(run_dir, 2)[0]
    assert sample["problem_id"].startswith("train-") and "mine" in sample["rewards"] and "correctness" in sample["rewards"]

    # The same files evaluate, with the column mapping given to eval.
    checkpoint = run_dir / "checkpoints" / "step_000002"
    for data in (train, folder):
        out = tmp_path / f"eval_{data.name}"
        args = ["eval", "--model", str(checkpoint), "--data", str(data), "--checker", "exact", "--max-tokens", "8", "--limit", "3"]
        result = CliRunner().invoke(
            app, [*args, "--out", str(out), "--no-progress", "data.columns={problem: question, answer: final_answer, id: uid}"]
        )
        assert result.exit_code == 0, result.output
        samples = [json.loads(line) for line in next(out.glob("*/samples.jsonl")).read_text().splitlines()]
        assert len(samples) == 3 and all(s["problem_id"].startswith(("train-", "heldout-")) for s in samples)


def test_a_wrong_column_exits_2_naming_it(tmp_path, own_data):
    train, folder, reward = own_data
    result = CliRunner().invoke(app, ["rl", *TINY_RL, f"run.output_dir={tmp_path / 'run'}", "data.source=dataset", f"data.train_file={train}"])
    assert result.exit_code == 2
    assert f"{train}: no column 'problem'" in result.output and "question, final_answer" in result.output
    wrong = "data.columns={problem: question, answer: final_answr}"
    result = CliRunner().invoke(
        app, ["rl", *TINY_RL, f"run.output_dir={tmp_path / 'run2'}", "data.source=dataset", f"data.train_file={folder}", wrong]
    )
    assert result.exit_code == 2 and f"{folder}: no column 'final_answr'" in result.output
    result = CliRunner().invoke(app, ["eval", "--data", str(train), "--out", str(tmp_path / "e"), "data.columns={problem: question, answer: nope}"])
    assert result.exit_code == 2 and "no column 'nope'" in result.output


@pytest.mark.slow
def test_samples_are_written_and_a_resume_never_duplicates_a_step(tmp_path):
    samples = ["train.log_samples_every=1", "train.log_samples_prompts=2", "train.save_every=2"]
    run_dir = run_rl(tiny_rl_config(tmp_path / "run", *samples))
    assert sample_steps(run_dir) == [1, 2]
    rows = read_samples(run_dir, 1)
    assert len(rows) == 2 * 4  # 2 prompts x 4 rollouts
    assert set(rows[0]) >= {"prompt", "completion", "reward", "rewards", "verdict", "length", "finish_reason"}
    assert set(rows[0]["rewards"]) == {"correctness", "length"}
    # A kill after step 3 was logged but before its checkpoint: the resumed run writes step 3 again.
    (run_dir / "samples" / "step_000003.jsonl").write_text('{"stale": true}\n')
    run_rl(tiny_rl_config(tmp_path / "run", *samples, "train.steps=4"), resume=True)
    assert sample_steps(run_dir) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        rows = read_samples(run_dir, step)
        assert len(rows) == 8 and all(r["step"] == step for r in rows)
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    # The report shows the first and the last logged step side by side.
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| step 1 | step 4 |" in text and "reward/length" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_reward_function_from_a_file_under_two_gloo_ranks(tmp_path, own_data):
    train, folder, reward = own_data
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc-per-node", "2", "--master-port", str(_free_port()), "-m", "slowthink.cli", "rl"]
    command += [f"run.output_dir={tmp_path / 'run'}", *TINY_RL, *own_overrides(train, folder, reward), "train.steps=1"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and rows[0]["reward/mine"] > 0


@pytest.mark.slow
def test_reward_function_from_a_file_in_a_parallel_study(tmp_path, own_data):
    train, folder, reward = own_data
    tiny = [*own_overrides(train, folder, reward), "train.steps=1", "train.eval_every=0", "data.tiny_eval_size=4"]
    tiny += ["rollout.prompts_per_step=2", "rollout.rollouts_per_prompt=2", "rollout.max_length_schedule=[[0,8]]", "model.path=tiny"]
    grid = {
        "base": str(CONFIGS / "tiny_rl.yaml"),
        "output_dir": str(tmp_path / "study"),
        "seeds": [0],
        "parallel": 2,
        "overrides": tiny,
        "factors": {"temperature": {"arms": {"t1": [], "t06": ["rollout.temperature=0.6"]}}},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    result = CliRunner().invoke(app, ["study", str(path)])
    assert result.exit_code == 0, result.output
    metrics = sorted((tmp_path / "study").rglob("metrics.jsonl"))
    assert len(metrics) == 2
    # Each cell (a subprocess of its own) loaded the function from its path and logged it.
    assert all(isinstance(read_metrics(m)[-1]["reward/mine"], float) for m in metrics)


@pytest.mark.slow
def test_shipped_code_task_config_trains_with_the_sandbox_reward(tmp_path, monkeypatch):
    """configs/tiny_code_rl.yaml as shipped (its data path is relative to the repository root),
    cut to 2 small steps: the code reward scores every rollout in the sandbox and is logged."""
    monkeypatch.chdir(CONFIGS.parents[2])
    small = ["rollout.prompts_per_step=2", "rollout.rollouts_per_prompt=2", "rollout.max_length_schedule=[[0,16]]", "train.steps=2"]
    config = load_config(
        RLConfig,
        CONFIGS / "tiny_code_rl.yaml",
        [f"run.output_dir={tmp_path / 'run'}", "run.torch_threads=1", "run.progress=false", *small, "train.log_samples_every=2"],
    )
    run_dir = run_rl(config)
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and all(isinstance(r["reward/tests"], float) for r in rows)
    samples = read_samples(run_dir, 2)
    assert len(samples) == 4 and all(s["problem_id"].startswith("code-") and "tests" in s["rewards"] for s in samples)


def test_a_raising_reward_function_stops_the_run_with_exit_2_naming_it(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def score(prompts, completions, **kwargs):\n    raise KeyError('tests')\n")
    own = [f"reward.functions={{mine: '{broken}:score'}}", "reward.weights={correctness: 1.0, mine: 1.0}"]
    result = CliRunner().invoke(app, ["rl", *TINY_RL, f"run.output_dir={tmp_path / 'run'}", *own, "train.steps=1"])
    assert result.exit_code == 2, result.output
    assert f"reward function 'mine' ({broken}:score) raised KeyError: 'tests' (on row 0 of the batch, problem 'train-" in result.output
