"""Where the paper presets scaled wrongly, each pinned by a test that failed before the fix:

- REINFORCE++'s batch std counted groups that selection then dropped;
- the Dr. GRPO constant (loss_aggregation=constant) followed the curriculum's current length;
- bf16 generation was accepted with old log-probs from the generator, and the KL-in-reward
  penalty was taken from the generator's log-probs instead of the trainer's.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from slowthink.config import ConfigError
from slowthink.data.problem_sets import ProblemSet
from slowthink.models.tiny import build_model, build_tokenizer
from slowthink.recipes.rl import StepRollouts, loss_settings, prepare_batch
from slowthink.rollout.generator import Completion
from slowthink.training.experience import RowOutcomes, SelectionSettings, rollout_sequences, select_training_rows, sequence_kl
from slowthink.training.logprobs import batched_logprobs

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import tiny_rl_config, update_parts  # noqa: E402
from test_rl_multirank import COMMON, SPEC, _step  # noqa: E402


def test_reinforce_pp_in_a_step_ignores_the_dropped_groups():
    """Through the step's selection: one informative group among 0, 3 or 15 solved ones."""
    settings = SelectionSettings(
        "reinforce_pp", drop_uniform_groups=True, question_selection=False, response_selection=False, overlength_masking=False
    )
    kept = []
    for solved in (0, 3, 15):
        rewards = torch.cat([torch.tensor([[1.0, 0.0, 0.0, 1.0]]), torch.ones(solved, 4)])
        ones = torch.ones_like(rewards)
        outcomes = RowOutcomes(rewards, rewards > 0, ones.long(), ones.bool(), 0 * ones)
        completions = [Completion(p, [5, 6], [-1.0, -1.0], "", "stop") for p in range(len(rewards)) for _ in range(4)]
        sequences = rollout_sequences([[1, 2]] * len(rewards), completions, 4, 0)
        batch, _, _ = select_training_rows(sequences, outcomes, settings, kl_coef=0.0)
        assert len(batch) == 4
        kept.append(batch.advantages_B)
    torch.testing.assert_close(kept[1], kept[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(kept[2], kept[0], rtol=0, atol=1e-6)


def test_dr_grpo_constant_is_fixed_for_the_whole_run():
    """8k then 20k (the STILL-3-Zero-32B curriculum): the normaliser is 20k at every step,
    so the loss scale does not drop 2.5x at the switch."""
    config = tiny_rl_config(Path("unused"), "algorithm.loss_aggregation=constant", "rollout.max_length_schedule=[[0,8192],[100,20480]]")
    assert loss_settings(config, 0.0, has_reference=False).max_length == 20480
    assert config.loss_constant_length == 20480


def test_bf16_generation_with_rollout_log_probs_is_refused():
    with pytest.raises(ConfigError, match="generation_dtype=bfloat16.*old_logprobs=rollout"):
        tiny_rl_config(Path("unused"), "rollout.generation_dtype=bfloat16", "algorithm.old_logprobs=rollout")
    # Either alone is fine: bf16 rollouts with the trainer's log-probs, or fp32 rollouts with their own.
    tiny_rl_config(Path("unused"), "rollout.generation_dtype=bfloat16")
    tiny_rl_config(Path("unused"), "algorithm.old_logprobs=rollout")


def test_kl_in_the_reward_is_taken_from_the_trainer_s_log_probs():
    """The completions' log-probs stand for a generator's (here: random numbers far from the
    model's); the penalty must come from the trainer's own forward of the same tokens."""
    _, prompt_ids, completions, totals, verdicts = _step("one_rank_all_dropped")
    config = tiny_rl_config(Path("unused"), *COMMON, "kl.placement=reward")
    model = build_model(build_tokenizer(), SPEC, seed=0)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    prompts = ProblemSet([SimpleNamespace(answer="")] * 4, prompt_ids)
    scored = SimpleNamespace(total=totals, verdicts=verdicts)
    _, _, metrics = prepare_batch(update_parts(config, model, reference), StepRollouts(prompts, completions, scored), config.kl.coef, config)
    sequences = rollout_sequences(prompt_ids, completions, 4, 0)
    temperature = config.rollout.temperature or 1.0
    policy = batched_logprobs(model, sequences.input_ids_BL, sequences.attention_mask_BL, temperature, 16)
    ref = batched_logprobs(reference, sequences.input_ids_BL, sequences.attention_mask_BL, temperature, 16)
    expected = float((config.kl.coef * sequence_kl(policy, ref, sequences.loss_mask_BT, config.kl.estimator)).mean())
    from_generator = float((config.kl.coef * sequence_kl(sequences.old_logprobs_BT, ref, sequences.loss_mask_BT, config.kl.estimator)).mean())
    assert abs(expected - from_generator) > 1e-3  # the test can tell the two apart
    assert metrics["kl_reward_penalty"] == pytest.approx(expected, rel=1e-4)
