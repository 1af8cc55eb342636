"""The RL recipe end to end on the tiny model: factors of the paper, metrics, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slowthink.config import ConfigError
from slowthink.recipes.rl import run_rl
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint, load_trainer_state

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import TINY_RL, tiny_rl_config  # noqa: E402


def test_rl_runs_and_logs_the_papers_monitors(tmp_path):
    run_dir = run_rl(tiny_rl_config(tmp_path / "run", "train.eval_every=2"))
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]  # step 0: held-out eval before training
    last = rows[-1]
    for key in (
        "reward",
        "accuracy",
        "response_length",
        "response_length_correct",
        "response_length_incorrect",
        "completion_ratio",
        "keywords/reflection",
        "entropy",
        "kl",
        "kl_coef",
        "clip_fraction",
        "grad_norm",
        "lr",
        "tokens_per_s",
        "time/generate_s",
        "time/reward_s",
        "time/update_s",
        "reward/correctness",
        "reward/length",
        "check/no_answer",
        "heldout/accuracy",
    ):
        assert key in last, key
    assert last["entropy"] > 0
    assert (run_dir / "config.yaml").is_file()
    assert latest_checkpoint(run_dir).name == "step_000002"
    assert (latest_checkpoint(run_dir) / "model.safetensors").is_file()


def test_fully_on_policy_step_has_ratio_exactly_one(tmp_path):
    rows = read_metrics(run_rl(tiny_rl_config(tmp_path / "run", "train.steps=1")) / "metrics.jsonl")
    assert rows[-1]["importance_ratio"] == 1.0
    assert rows[-1]["clip_fraction"] == 0.0
    assert rows[-1]["optimizer_steps"] == 1


def test_off_policy_minibatches_take_several_steps_with_ratio_off_one(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "train.steps=1", "update.prompts_per_update=2", "update.epochs=2", "optim.lr=0.01")
    row = read_metrics(run_rl(config) / "metrics.jsonl")[-1]
    assert row["optimizer_steps"] == 4  # 2 mini-batches x 2 epochs
    assert row["advantage_abs_mean"] > 0
    assert row["importance_ratio"] != 1.0  # later mini-batches see an updated policy


def test_stale_rollouts_use_the_rollout_logprobs(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "train.steps=3", "rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout")
    run_dir = run_rl(config)
    assert len(read_metrics(run_dir / "metrics.jsonl")) == 3
    # The generator's own (stale) weights are part of the checkpoint.
    assert "generator" in load_trainer_state(latest_checkpoint(run_dir))


def test_cosine_kl_reaches_its_end_value_exactly(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "train.steps=4", "kl.mode=cosine", "kl.start=0.001", "kl.end=0.0", "kl.anneal_steps=2")
    rows = read_metrics(run_rl(config) / "metrics.jsonl")
    coefs = [r["kl_coef"] for r in rows]
    assert coefs[0] == pytest.approx(0.001)
    assert coefs[1] == pytest.approx(0.0005)
    assert coefs[2:] == [0.0, 0.0]


def test_kl_in_reward_penalizes_the_reward(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "train.steps=2", "kl.mode=fixed", "kl.coef=1.0", "kl.placement=reward", "optim.lr=0.01")
    rows = read_metrics(run_rl(config) / "metrics.jsonl")
    # Step 1 starts at the reference (penalty 0); after an update the policy has moved away.
    assert rows[0]["kl_reward_penalty"] == pytest.approx(0.0, abs=1e-6)
    assert rows[1]["kl_reward_penalty"] > 0


def test_reference_reset_replaces_the_reference_with_the_policy(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "kl.mode=fixed", "kl.reference_reset_every=2")
    run_dir = run_rl(config)
    saved = load_trainer_state(latest_checkpoint(run_dir))
    assert saved["reference_reset_at"] == 2
    from safetensors.torch import load_file

    weights = load_file(latest_checkpoint(run_dir) / "model.safetensors")
    for name, tensor in weights.items():
        assert torch.equal(saved["reference"][name], tensor), name


def test_max_length_curriculum_is_followed(tmp_path):
    config = tiny_rl_config(tmp_path / "run", "train.steps=3", "rollout.max_length_schedule=[[0,6],[2,10]]")
    rows = read_metrics(run_rl(config) / "metrics.jsonl")
    assert [r["max_length"] for r in rows] == [6, 6, 10]
    assert max(r["response_length"] for r in rows[:2]) <= 6


def test_overlength_masking_drops_truncated_responses(tmp_path):
    # With 3 tokens nearly every random response is cut: masking keeps (almost) none.
    config = tiny_rl_config(tmp_path / "run", "train.steps=1", "rollout.max_length_schedule=[[0,3]]", "algorithm.overlength_masking=true")
    row = read_metrics(run_rl(config) / "metrics.jsonl")[-1]
    assert row["kept_fraction"] == pytest.approx(row["completion_ratio"])


@pytest.mark.parametrize("advantage", ["grpo_no_std", "rloo", "reinforce_pp"])
def test_other_estimators_and_aggregations_run(tmp_path, advantage):
    config = tiny_rl_config(
        tmp_path / "run", "train.steps=1", f"algorithm.advantage={advantage}", "algorithm.loss_aggregation=constant", "algorithm.entropy_coef=0.01"
    )
    assert read_metrics(run_rl(config) / "metrics.jsonl")[-1]["optimizer_steps"] == 1


def test_impossible_combinations_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="prompts_per_update"):
        tiny_rl_config(tmp_path, "update.prompts_per_update=3")
    with pytest.raises(ConfigError, match="old_logprobs=rollout"):
        tiny_rl_config(tmp_path, "rollout.sync_weights_every=2")
    with pytest.raises(ConfigError, match="truncated log-probs"):
        tiny_rl_config(tmp_path, "rollout.backend=vllm", "rollout.top_p=0.9", "rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout")
    with pytest.raises(ConfigError, match="hf backend only"):
        tiny_rl_config(tmp_path, "rollout.backend=vllm", "model.device=cuda", "rollout.generation_batch_size=8")
    with pytest.raises(ConfigError, match="need rollout.tools=python"):
        tiny_rl_config(tmp_path, "rollout.max_tool_calls=2")
    with pytest.raises(ConfigError, match="no effect"):
        tiny_rl_config(tmp_path, "kl.placement=reward")
    with pytest.raises(ConfigError, match="alternatives"):
        tiny_rl_config(tmp_path, "algorithm.question_selection=true", "algorithm.response_selection=true")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slowthink.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.slow  # ~10 s: several CLI runs that each load the model
def test_cli_errors_name_the_key_the_row_and_the_path(tmp_path):
    bad_key = _cli("rl", "kl.cooef=1", cwd=tmp_path)
    assert bad_key.returncode == 2 and "kl.cooef" in bad_key.stderr and "coef" in bad_key.stderr
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n{not json\n")
    bad_row = _cli("rl", "data.source=jsonl", f"data.train_file={data}", *TINY_RL, cwd=tmp_path)
    assert bad_row.returncode == 2 and f"{data}:2" in bad_row.stderr, bad_row.stderr
    missing = _cli("rl", "model.path=/nonexistent/model", *TINY_RL, cwd=tmp_path)
    assert missing.returncode == 2 and "/nonexistent/model" in missing.stderr, missing.stderr
    for problem in (bad_key, bad_row, missing):
        assert "Traceback" not in problem.stderr
