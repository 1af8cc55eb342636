"""Selection, advantages and the KL-in-reward penalty over a step's rollouts."""

from __future__ import annotations

import torch

from slowthink.rollout.generator import Completion
from slowthink.training.distributed import DistInfo
from slowthink.training.experience import RowOutcomes, SelectionSettings, keep_mask, rollout_sequences, select_training_rows, step_advantages

GRPO = SelectionSettings("grpo", drop_uniform_groups=True, question_selection=False, response_selection=False, overlength_masking=False)


def _outcomes(rewards, finished=None, kl=None, correct=None, lengths=None) -> RowOutcomes:
    rewards_PG = torch.tensor(rewards, dtype=torch.float32)
    ones = torch.ones_like(rewards_PG)
    return RowOutcomes(
        rewards_PG=rewards_PG,
        correct_PG=torch.tensor(correct) if correct is not None else rewards_PG > 0,
        lengths_PG=torch.tensor(lengths) if lengths is not None else ones.long(),
        finished_PG=torch.tensor(finished) if finished is not None else ones.bool(),
        kl_PG=torch.tensor(kl, dtype=torch.float32) if kl is not None else 0 * ones,
    )


def test_kl_penalty_comes_after_the_outcome_advantage_and_scales_with_its_coefficient():
    # Group 0 all correct, group 1 half right. Per-sequence KL of each rollout (nats).
    kl = [[0.3, 0.1, 0.7, 0.2], [0.4, 0.05, 0.6, 0.9]]
    outcomes = _outcomes([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]], kl=kl)
    base = step_advantages(outcomes, GRPO, kl_coef=0.0)
    once = step_advantages(outcomes, GRPO, kl_coef=0.1) - base
    twice = step_advantages(outcomes, GRPO, kl_coef=0.2) - base
    # Doubling the coefficient doubles the penalty's effect; it is exactly -coef * KL.
    torch.testing.assert_close(twice, 2 * once, rtol=0, atol=1e-6)
    torch.testing.assert_close(once, -0.1 * torch.tensor(kl), rtol=0, atol=1e-6)
    # The all-correct group carries no outcome signal and is still dropped (the uniform
    # test reads the outcome rewards, not rewards with KL noise in them).
    assert torch.equal(base[0], torch.zeros(4))
    assert keep_mask(outcomes, GRPO).tolist() == [[False] * 4, [True] * 4]


def test_overlength_masking_keeps_truncated_rows_out_of_the_baseline():
    # still3 reward, 4 finished wrong answers (-1), 4 truncated ones (-2).
    # With the truncated rows in the baseline each wrong answer got +0.935.
    outcomes = _outcomes([[-1.0] * 4 + [-2.0] * 4], finished=[[True] * 4 + [False] * 4])
    masked = SelectionSettings("grpo", True, False, False, overlength_masking=True)
    assert torch.equal(step_advantages(outcomes, masked, 0.0), torch.zeros(1, 8))
    assert not keep_mask(outcomes, masked).any()  # the finished rows agree: no signal, dropped
    kept_anyway = SelectionSettings("grpo", False, False, False, overlength_masking=True)
    assert keep_mask(outcomes, kept_anyway).tolist() == [[True] * 4 + [False] * 4]
    assert torch.equal(step_advantages(outcomes, kept_anyway, 0.0), torch.zeros(1, 8))


def test_reinforce_pp_with_one_rollout_per_prompt_trains():
    settings = SelectionSettings("reinforce_pp", True, False, False, False)
    outcomes = _outcomes([[1.0], [0.0], [0.0], [1.0]])
    assert keep_mask(outcomes, settings).all()  # the batch is the group: it has signal
    advantages = step_advantages(outcomes, settings, 0.0).flatten()
    # mean 0.5, centred +-0.5, unbiased std sqrt(1/3): +-sqrt(3)/2.
    torch.testing.assert_close(advantages, torch.tensor([1.0, -1.0, -1.0, 1.0]) * 3**0.5 / 2, rtol=0, atol=1e-5)
    # A batch in which every reward agrees has nothing to learn: dropped.
    assert not keep_mask(_outcomes([[1.0], [1.0], [1.0], [1.0]]), settings).any()


def test_each_rank_takes_its_kept_rows_and_knows_the_owner_of_every_kept_row():
    # 4 prompts x 2 rollouts over 2 ranks: rank 1 owns prompts 2 and 3 (rows 4-7).
    outcomes = _outcomes([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    completions = [Completion(prompt_index=i // 2, token_ids=[5 + i], logprobs=[-1.0], text="", finish_reason="stop") for i in range(4)]
    sequences = rollout_sequences([[1], [2]], completions, 2, pad_id=0)
    batch, row_ranks, stats = select_training_rows(sequences, outcomes, GRPO, 0.0, DistInfo(rank=1, world_size=2))
    assert row_ranks.tolist() == [0, 0, 1, 1]  # kept rows 0, 1 (rank 0) and 4, 5 (rank 1)
    assert batch.input_ids_BL[:, 1].tolist() == [5, 6]  # rank 1's local rows 0 and 1
    assert batch.advantages_B.tolist() == step_advantages(outcomes, GRPO, 0.0).flatten()[4:6].tolist()
    assert stats["kept_fraction"] == 0.5 and stats["uniform_groups"] == 0.5
