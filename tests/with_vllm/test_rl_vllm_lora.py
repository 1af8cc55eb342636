"""The RL recipe with model.lora on rollout.backend=vllm: every sync gives the engine the base
weights with the adapter merged in, so it samples what the trainer's adapted module does, and
--resume gives the engine the checkpoint's adapter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "recipes"))
from vllm_helpers import ENGINE_OVERRIDES, LOGPROB_TOLERANCE, compare_with_trainer, require_vllm  # noqa: E402

require_vllm()

from rl_helpers import tiny_rl_config  # noqa: E402

from slowthink.recipes import rl, rl_engine  # noqa: E402
from slowthink.training.checkpoint import latest_checkpoint  # noqa: E402

# A rate at which the adapter visibly moves the tiny model's log-probs within a step or two.
VLLM_LORA = ["rollout.backend=vllm", "optim.lr=0.02", "model.lora.r=4", "model.lora.alpha=16", "kl.mode=fixed", *ENGINE_OVERRIDES]


@pytest.fixture
def sync_checks(monkeypatch):
    """Engine vs the trainer's adapted module just before and just after every weight sync."""
    checks: list[dict] = []
    real_sync = rl_engine.generator_sync

    def observed_sync(generator, model):
        tokenizer = generator.tokenizer
        before = compare_with_trainer(generator, model, tokenizer)
        real_sync(generator, model)
        checks.append({"before": before, "after": compare_with_trainer(generator, model, tokenizer)})

    monkeypatch.setattr(rl_engine, "generator_sync", observed_sync)  # every caller goes through rl_engine
    return checks


def test_lora_on_vllm_samples_the_merged_adapter_and_resumes(tmp_path, sync_checks):
    straight = rl.run_rl(tiny_rl_config(tmp_path / "straight", "train.steps=3", *VLLM_LORA))
    assert len(sync_checks) == 3
    for step, check in enumerate(sync_checks, start=1):
        assert check["after"].same_tokens, step
        assert check["after"].max_logprob_diff < LOGPROB_TOLERANCE, (step, check["after"].max_logprob_diff)
    assert sync_checks[-1]["before"].max_logprob_diff > 10 * LOGPROB_TOLERANCE  # the adapter moved the policy

    run_dir = tmp_path / "run"
    rl.run_rl(tiny_rl_config(run_dir, "train.steps=2", *VLLM_LORA))
    sync_checks.clear()
    rl.run_rl(tiny_rl_config(run_dir, "train.steps=3", *VLLM_LORA), resume=True)
    restore = sync_checks[0]  # the restore's sync: from the base weights to the step-2 adapter merged in
    assert restore["before"].max_logprob_diff > 10 * LOGPROB_TOLERANCE
    assert restore["after"].same_tokens and restore["after"].max_logprob_diff < LOGPROB_TOLERANCE
    expected = load_file(latest_checkpoint(straight) / "adapter_model.safetensors")
    actual = load_file(latest_checkpoint(run_dir) / "adapter_model.safetensors")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
