"""Advantage estimators against values worked out by hand (shown in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from slowthink.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    compute_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    zero_variance_groups,
)

# Group 0: two right, two wrong. Group 1: all right (no signal).
BINARY_PG = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)


def test_grpo_binary_rewards() -> None:
    # Group 0: mean 0.5, centred [.5, -.5, -.5, .5], unbiased var = 1/3, std = 1/sqrt(3),
    # so the advantage is 0.5 * sqrt(3) = sqrt(3)/2. Group 1: all equal -> 0.
    half_sqrt3 = math.sqrt(3) / 2
    expected = torch.tensor([[half_sqrt3, -half_sqrt3, -half_sqrt3, half_sqrt3], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grpo_advantages(BINARY_PG, eps=0.0), expected, rtol=0, atol=1e-12)
    # The default eps shrinks it by a relative ~eps/std only.
    torch.testing.assert_close(grpo_advantages(BINARY_PG), expected, rtol=0, atol=2e-6)


def test_grpo_still3_rewards_uses_unbiased_std() -> None:
    # STILL-3-1.5B's rewards (+1 right, -1 wrong, -2 nothing boxed): [1, -1, -2, 1].
    # mean -0.25; centred [1.25, -0.75, -1.75, 1.25]; squares sum 6.75; unbiased var
    # 6.75 / 3 = 2.25, std 1.5 -> [5/6, -1/2, -7/6, 5/6]. (Population std would be 1.299.)
    rewards = torch.tensor([[1.0, -1.0, -2.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[5 / 6, -0.5, -7 / 6, 5 / 6]], dtype=torch.float64)
    torch.testing.assert_close(grpo_advantages(rewards, eps=0.0), expected, rtol=0, atol=1e-12)


def test_dr_grpo_only_centres() -> None:
    expected = torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grpo_advantages(BINARY_PG, scale_by_std=False), expected, rtol=0, atol=0)
    torch.testing.assert_close(compute_advantages("grpo_no_std", BINARY_PG), expected, rtol=0, atol=0)


def test_rloo_leaves_each_rollout_out_of_its_baseline() -> None:
    # r_0 = 1, others [0, 0, 1] average 1/3 -> 2/3; r_1 = 0, others [1, 0, 1] -> -2/3.
    expected = torch.tensor([[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(rloo_advantages(BINARY_PG), expected, rtol=0, atol=1e-12)
    # Non-binary: [3, 1, 2] -> 3 - 1.5, 1 - 2.5, 2 - 2.
    torch.testing.assert_close(
        rloo_advantages(torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64)),
        torch.tensor([[1.5, -1.5, 0.0]], dtype=torch.float64),
        rtol=0,
        atol=1e-12,
    )


def test_reinforce_pp_scales_by_the_batch_std() -> None:
    # Centred values over the batch: [.5, -.5, -.5, .5, 0, 0, 0, 0]; squares sum 1;
    # unbiased var 1/7, std 1/sqrt(7) -> group 0 gets 0.5 * sqrt(7), group 1 stays 0.
    a = math.sqrt(7) / 2
    expected = torch.tensor([[a, -a, -a, a], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(reinforce_pp_advantages(BINARY_PG, eps=0.0), expected, rtol=0, atol=1e-12)


def test_reinforce_pp_keeps_relative_group_scale_where_grpo_does_not() -> None:
    # Group 1 has ten times group 0's spread. GRPO normalises each group to the same scale;
    # REINFORCE++ keeps the factor of ten.
    rewards = torch.tensor([[0.0, 1.0], [0.0, 10.0]], dtype=torch.float64)
    grpo = grpo_advantages(rewards, eps=0.0)
    torch.testing.assert_close(grpo[0], grpo[1], rtol=0, atol=1e-12)
    rpp = reinforce_pp_advantages(rewards, eps=0.0)
    torch.testing.assert_close(rpp[1], 10 * rpp[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["grpo", "grpo_no_std", "rloo"])
def test_single_rollout_groups_get_zero_under_a_group_baseline(name: str) -> None:
    rewards = torch.tensor([[1.0], [0.0], [-2.0]])
    advantages = compute_advantages(name, rewards)
    assert advantages.shape == (3, 1)
    assert torch.equal(advantages, torch.zeros(3, 1))


def test_reinforce_pp_with_one_rollout_per_prompt_normalises_over_the_batch() -> None:
    # No group to centre in: REINFORCE++ (Hu, 2025) uses the batch. Rewards [1, 0, -2]:
    # mean -1/3, centred [4/3, 1/3, -5/3], squares sum 42/9, unbiased var 7/3.
    rewards = torch.tensor([[1.0], [0.0], [-2.0]], dtype=torch.float64)
    std = math.sqrt(7 / 3)
    expected = torch.tensor([[4 / 3], [1 / 3], [-5 / 3]], dtype=torch.float64) / std
    torch.testing.assert_close(reinforce_pp_advantages(rewards, eps=0.0), expected, rtol=0, atol=1e-12)
    assert torch.equal(reinforce_pp_advantages(torch.ones(3, 1)), torch.zeros(3, 1))


def test_overlength_rows_are_left_out_of_the_group_baseline() -> None:
    # still3 rewards, 4 finished wrong answers (-1) and 4 truncated
    # ones (-2, nothing boxed). Over all 8 the wrong answers got (-1 + 1.5) / 0.5345 =
    # +0.935; over the finished rows only the group is uniform: no signal, no update.
    rewards = torch.tensor([[-1.0] * 4 + [-2.0] * 4])
    finished = torch.tensor([[True] * 4 + [False] * 4])
    torch.testing.assert_close(compute_advantages("grpo", rewards)[0, 0], torch.tensor(0.9354), atol=1e-4, rtol=0)
    for name in sorted(ADVANTAGE_ESTIMATORS):
        assert torch.equal(compute_advantages(name, rewards, valid_PG=finished), torch.zeros(1, 8)), name
    assert zero_variance_groups(rewards, finished).tolist() == [True]
    assert zero_variance_groups(rewards).tolist() == [False]


def test_masked_baseline_equals_the_baseline_of_the_finished_rows_alone() -> None:
    rewards = torch.tensor([[1.0, -1.0, -2.0, 1.0, -2.0], [1.0, 1.0, -1.0, -2.0, -2.0]], dtype=torch.float64)
    finished = torch.tensor([[True, True, False, True, True], [True, False, True, True, False]])
    for name in sorted(ADVANTAGE_ESTIMATORS):
        masked = compute_advantages(name, rewards, eps=0.0, valid_PG=finished)
        assert torch.equal(masked[~finished], torch.zeros(int((~finished).sum()), dtype=torch.float64)), name
        if name == "reinforce_pp":
            continue  # its std is over the whole batch, checked below
        for p in range(2):
            alone = compute_advantages(name, rewards[p, finished[p]][None], eps=0.0)
            torch.testing.assert_close(masked[p, finished[p]], alone[0], rtol=0, atol=1e-12)
    # REINFORCE++: group-centred over finished rows, scaled by the std of those 7 values.
    centred = torch.tensor([1.25, -0.75, 1.25, -1.75, 1 + 2 / 3, -1 + 2 / 3, -2 + 2 / 3], dtype=torch.float64)
    expected = centred / centred.std()
    torch.testing.assert_close(reinforce_pp_advantages(rewards, eps=0.0, valid_PG=finished)[finished], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_estimators_rank_rollouts_like_their_rewards_and_centre_each_group(name: str) -> None:
    rewards = torch.tensor([[0.0, 2.0, 1.0], [5.0, 5.0, 4.0]])
    advantages = compute_advantages(name, rewards)
    assert advantages[0].argsort().tolist() == [0, 2, 1]
    assert advantages[1, 0] == advantages[1, 1] > advantages[1, 2]
    torch.testing.assert_close(advantages.sum(dim=1), torch.zeros(2), rtol=0, atol=1e-6)


def test_integer_rewards_are_promoted_to_float() -> None:
    advantages = compute_advantages("grpo", torch.tensor([[1, 0]]))
    assert advantages.dtype == torch.float32
    assert advantages[0, 0] > 0 > advantages[0, 1]


def test_unknown_estimator_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'.*'grpo'.*'grpo_no_std'.*'rloo'.*'reinforce_pp'"):
        compute_advantages("ppo", BINARY_PG)


def test_rewards_must_be_prompts_by_rollouts() -> None:
    with pytest.raises(ValueError, match=r"got shape \(8,\)"):
        grpo_advantages(torch.zeros(8))


def test_zero_variance_groups() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [-1.0, -1.0, -2.0, -1.0]])
    assert zero_variance_groups(rewards).tolist() == [False, True, True, False]
    assert zero_variance_groups(torch.tensor([[3.0], [4.0]])).tolist() == [True, True]


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_all_equal_groups_are_exactly_zero_without_rounding_residue(name: str, eps: float) -> None:
    # mean([0.1, 0.1, 0.1]) = 0.10000000000000002 in float64: without care the residue
    # -1.4e-17 divided by a std of 1.7e-17 became an advantage of -0.82 with eps = 0.
    rewards = torch.tensor([[0.1, 0.1, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(compute_advantages(name, rewards, eps=eps), torch.zeros(2, 3, dtype=torch.float64))


def test_reinforce_pp_batch_std_is_over_the_rows_that_train() -> None:
    """A kept group's advantages must not grow with the solved groups dropped beside it.

    The group [1, 0, 0, 1] alone: centred [.5, -.5, -.5, .5], unbiased std over its 4 rows
    1/sqrt(3), advantages .5 sqrt(3) = 0.866. Adding 3 or 15 all-correct groups that the
    selection drops used to count their zeros in the std: 1.5 with 0 -> 3.35 with 3 -> 6.87."""
    kept = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    alone = reinforce_pp_advantages(kept, eps=0.0)
    for solved in (3, 15):
        rewards = torch.cat([kept, torch.ones(solved, 4, dtype=torch.float64)])
        trains = torch.zeros_like(rewards, dtype=torch.bool)
        trains[0] = True
        advantages = compute_advantages("reinforce_pp", rewards, eps=0.0, train_PG=trains)
        torch.testing.assert_close(advantages[0], alone[0], rtol=0, atol=1e-12)
        assert torch.equal(advantages[1:], torch.zeros(solved, 4, dtype=torch.float64))
    torch.testing.assert_close(alone[0], torch.tensor([1, -1, -1, 1], dtype=torch.float64) * 0.5 * math.sqrt(3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["grpo", "grpo_no_std", "rloo"])
def test_group_estimators_do_not_depend_on_which_rows_train(name: str) -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    trains = torch.tensor([[True] * 4, [False] * 4, [True] * 4])
    assert torch.equal(compute_advantages(name, rewards, train_PG=trains), compute_advantages(name, rewards))
