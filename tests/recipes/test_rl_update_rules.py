"""Rules of the RL update that change training silently when broken."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from slowthink.config import ConfigError
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_config import check_world_size
from slowthink.tracking import read_metrics
from slowthink.training import checkpoint as ckpt
from slowthink.training.optim import OptimConfig, build_optimizer, continue_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config  # noqa: E402


def test_k1_in_the_loss_is_rejected_with_the_alternatives(tmp_path):
    # E_pi[grad k1] = E_pi[grad log pi] = 0: a k1 loss term pulls nowhere.
    with pytest.raises(ConfigError, match=r"kl.estimator=k1.*zero expected gradient.*k3.*k2.*kl.placement=reward"):
        tiny_rl_config(tmp_path, "kl.mode=fixed", "kl.estimator=k1")
    tiny_rl_config(tmp_path, "kl.mode=fixed", "kl.estimator=k1", "kl.placement=reward")  # a reward: fine
    tiny_rl_config(tmp_path, "kl.estimator=k1")  # monitor only (kl.mode=off): fine


def test_prompts_must_divide_over_ranks_and_minibatches(tmp_path):
    config = tiny_rl_config(tmp_path, "rollout.prompts_per_step=4", "update.prompts_per_update=2")
    check_world_size(config, 2)
    # 2 prompts per mini-batch over 4 ranks: (2 // 4) * G = 0 sequences per rank before.
    with pytest.raises(ConfigError, match=r"update.prompts_per_update \(2\) must divide evenly over 4 ranks"):
        check_world_size(config, 4)
    with pytest.raises(ConfigError, match=r"rollout.prompts_per_step \(4\).*3 ranks.*update.prompts_per_update \(2\).*3 ranks"):
        check_world_size(config, 3)


def test_continuing_the_sft_optimizer_keeps_rl_hyperparameters_and_takes_the_moments(tmp_path):
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, TinyModelSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), seed=0)
    sft = build_optimizer(model, OptimConfig(lr=1e-3, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.3))
    model(input_ids=torch.tensor([[1, 2, 3]])).logits.square().mean().backward()
    sft.step()
    ckpt.save_checkpoint(tmp_path / "sft", 1, model, tokenizer, {"optimizer": sft.state_dict()})
    rl_config = OptimConfig(lr=2e-6, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    rl = build_optimizer(model, rl_config)
    continue_optimizer(rl, ckpt.latest_checkpoint(tmp_path / "sft"), rl_config.lr)
    group = rl.param_groups[0]
    assert (group["lr"], tuple(group["betas"]), group["eps"], group["weight_decay"]) == (2e-6, (0.9, 0.99), 1e-8, 0.0)
    first = next(iter(model.parameters()))
    torch.testing.assert_close(rl.state[first]["exp_avg"], sft.state[first]["exp_avg"], rtol=0, atol=0)
    torch.testing.assert_close(rl.state[first]["exp_avg_sq"], sft.state[first]["exp_avg_sq"], rtol=0, atol=0)


def test_trainer_applies_the_rollout_temperature(tmp_path):
    # At T = 0.7 with the sampler's log-probs as the old policy, the first mini-batch sees
    # the policy that sampled: its importance ratio is 1 up to float rounding between the
    # generator's cached decoding and the trainer's batched forward (tolerance 1e-4). A
    # trainer that forgot the temperature compares softmax(z) with softmax(z / 0.7).
    config = tiny_rl_config(
        tmp_path / "run",
        "train.steps=1",
        "rollout.temperature=0.7",
        "algorithm.old_logprobs=rollout",
        "update.prompts_per_update=2",
    )
    row = read_metrics(run_rl(config) / "metrics.jsonl")[-1]
    assert row["optimizer_steps"] == 2
    assert abs(row["importance_ratio_first"] - 1.0) < 1e-4, row["importance_ratio_first"]


def test_optimizer_steps_and_schedule_follow_the_config_when_rows_are_dropped(tmp_path):
    # Overlength masking at a 4-token limit drops most rows. The config asks for 2 updates
    # per step: the kept rows are split into 2 mini-batches (only fewer than 2 rows can
    # leave one empty). Before, a step with 2-8 of its 16 rows left took a single step
    # (ceil(kept / 8)), and a cosine schedule planned for steps x 2 updates never ended.
    config = tiny_rl_config(
        tmp_path / "run",
        "train.steps=2",
        "update.prompts_per_update=2",
        "algorithm.overlength_masking=true",
        "rollout.max_length_schedule=[[0,4]]",
        "optim.schedule=cosine",
        "optim.min_lr_ratio=0.1",
    )
    run_dir = run_rl(config)
    rows = read_metrics(run_dir / "metrics.jsonl")
    kept = [round(r["kept_fraction"] * 16) for r in rows]
    assert any(2 <= k <= 8 for k in kept), kept  # a step the old rule got wrong
    assert [r["optimizer_steps"] for r in rows] == [min(2, k) for k in kept]
    scheduler = ckpt.load_trainer_state(ckpt.latest_checkpoint(run_dir))["scheduler"]
    assert scheduler["last_epoch"] == 4  # the planned horizon, skipped mini-batches included
    assert scheduler["_last_lr"][0] == pytest.approx(1e-4)  # cosine ended at 0.1 x optim.lr


def test_a_step_without_an_update_logs_null_not_zero(tmp_path):
    # A random tiny model is never right: with the correctness reward alone every group is
    # uniform and dropped, so nothing trains. Its entropy, KL and gradient norm are unknown
    # (null), not 0.0, which drew false dips in the report.
    config = tiny_rl_config(tmp_path / "run", "train.steps=1", "algorithm.drop_uniform_groups=true", "reward.weights={correctness: 1.0}")
    row = read_metrics(run_rl(config) / "metrics.jsonl")[-1]
    assert row["kept_fraction"] == 0.0 and row["optimizer_steps"] == 0
    assert row["entropy"] is None and row["kl"] is None and row["grad_norm"] is None
    assert row["reward"] == 0.0  # the rollout metrics are still there
