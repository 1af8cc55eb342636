"""The RL recipe with rollout.backend=vllm on the tiny model: every sync leaves the engine
sampling from the trainer's weights, and --resume restores the engine's weights."""

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
from slowthink.tracking import read_metrics  # noqa: E402
from slowthink.training.checkpoint import latest_checkpoint  # noqa: E402

# A rate at which three steps visibly move the tiny model's log-probs (the checks below need it).
VLLM_RL = ["rollout.backend=vllm", "optim.lr=0.01", *ENGINE_OVERRIDES]


@pytest.fixture
def sync_checks(monkeypatch):
    """Observe every weight sync of the recipe: engine vs trainer just before and just after it."""
    checks: list[dict] = []
    real_sync = rl_engine.generator_sync

    def observed_sync(generator, model):
        tokenizer = generator.tokenizer
        before = compare_with_trainer(generator, model, tokenizer)
        real_sync(generator, model)
        checks.append({"before": before, "after": compare_with_trainer(generator, model, tokenizer)})

    monkeypatch.setattr(rl_engine, "generator_sync", observed_sync)  # every caller goes through rl_engine
    return checks


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Three uninterrupted steps (the reference for the resumed run)."""
    return rl.run_rl(tiny_rl_config(tmp_path_factory.mktemp("straight") / "run", "train.steps=3", *VLLM_RL))


def test_rl_steps_on_vllm_and_the_engine_follows_every_update(tmp_path, sync_checks):
    run_dir = rl.run_rl(tiny_rl_config(tmp_path / "run", "train.steps=3", *VLLM_RL))
    metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert all(m["optimizer_steps"] == 1 and m["tokens_per_s"] > 0 for m in metrics)
    # One sync per step (sync_weights_every=1); each makes greedy rollouts equal the HF
    # generator's on the trainer's weights, and before it the engine was behind.
    assert len(sync_checks) == 3
    for step, check in enumerate(sync_checks, start=1):
        assert check["after"].same_tokens, step
        assert check["after"].max_logprob_diff < LOGPROB_TOLERANCE, (step, check["after"].max_logprob_diff)
        assert check["before"].max_logprob_diff > 10 * LOGPROB_TOLERANCE, step


def test_resume_restores_the_engine_weights(tmp_path, sync_checks, straight_run):
    run_dir = tmp_path / "run"
    rl.run_rl(tiny_rl_config(run_dir, "train.steps=2", *VLLM_RL))
    sync_checks.clear()
    rl.run_rl(tiny_rl_config(run_dir, "train.steps=3", *VLLM_RL), resume=True)
    # The first sync of the resumed run is the restore's: the engine held the initial weights,
    # and afterwards samples from the step-2 checkpoint's.
    restore = sync_checks[0]
    assert restore["before"].max_logprob_diff > 10 * LOGPROB_TOLERANCE
    assert restore["after"].same_tokens and restore["after"].max_logprob_diff < LOGPROB_TOLERANCE
    # So the resumed run draws the rollouts the uninterrupted one drew, and ends equal to it.
    expected = load_file(latest_checkpoint(straight_run) / "model.safetensors")
    actual = load_file(latest_checkpoint(run_dir) / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    straight_metrics = read_metrics(straight_run / "metrics.jsonl")
    resumed_metrics = read_metrics(run_dir / "metrics.jsonl")
    assert [m["reward"] for m in resumed_metrics] == [m["reward"] for m in straight_metrics]


def test_stale_rollouts_resume_from_the_engines_own_weights(tmp_path, sync_checks):
    """sync_weights_every=2: the step-3 checkpoint's engine holds step 2's weights, not step 3's."""
    stale = ["rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout", *VLLM_RL]
    run_dir = tmp_path / "run"
    rl.run_rl(tiny_rl_config(run_dir, "train.steps=3", *stale))
    assert len(sync_checks) == 1  # after step 2 only
    saved = torch.load(latest_checkpoint(run_dir) / "trainer_state.pt", weights_only=False)["generator"]
    step3 = load_file(latest_checkpoint(run_dir) / "model.safetensors")
    assert any(not torch.equal(saved[name], step3[name]) for name in step3)

    engines = []
    monkey_restore = rl.restore

    def observed_restore(checkpoint, parts):
        state = monkey_restore(checkpoint, parts)
        model, generator = parts.model, parts.generator
        stale_model = type(model).from_pretrained(checkpoint, dtype=torch.float32)
        stale_model.load_state_dict(saved, strict=False)
        engines.append(compare_with_trainer(generator, stale_model, generator.tokenizer))
        return state

    rl.restore = observed_restore
    try:
        rl.run_rl(tiny_rl_config(run_dir, "train.steps=4", *stale), resume=True)
    finally:
        rl.restore = monkey_restore
    assert engines and engines[0].same_tokens and engines[0].max_logprob_diff < LOGPROB_TOLERANCE
