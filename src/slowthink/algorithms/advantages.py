"""How advantages are formed from outcome rewards, one scalar per rollout.

Every estimator here takes the rewards of a step as a ``(P, G)`` tensor (P prompts, G
rollouts per prompt; row p holds the G rollouts of prompt p) and returns a ``(P, G)``
tensor of advantages, one per sequence, which the policy loss broadcasts over its tokens.
The paper trains with outcome rewards only (section 2, "Reward Design"), so there is no
value model and no per-token credit assignment: a group of rollouts of the same prompt is
its own baseline.

Conventions, chosen once for all estimators:
- Standard deviations are *unbiased* (``torch.std`` with Bessel's correction), as in verl's
  GRPO, which the paper's section 3 and 4 experiments ran on. With G = 8 the unbiased std
  is ``sqrt(8/7)`` times the population std, so advantages are ~6.5% smaller than with
  ``unbiased=False``; the sign and ranking never change.
- A group of one rollout (G = 1) has no baseline to compare against: its advantage is 0.
- A group whose rewards are all equal gets exactly 0 (not a rounding residue such as
  ``0.1 - mean([0.1, 0.1, 0.1]) = -1.4e-17`` blown up by a tiny std), even with eps = 0.
- Integer rewards are promoted to float32; floating rewards keep their dtype.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _check_rewards(rewards_PG: Tensor) -> Tensor:
    """Return the rewards as a floating (P, G) tensor, or say what shape was given."""
    if rewards_PG.ndim != 2:
        raise ValueError(
            f"rewards_PG must have shape (prompts, rollouts per prompt), got shape {tuple(rewards_PG.shape)}"
        )
    return rewards_PG if rewards_PG.is_floating_point() else rewards_PG.float()


def _group_centered(rewards_PG: Tensor) -> Tensor:
    """(P, G) ``r - group mean``, exactly 0 in groups whose rewards are all equal."""
    centered_PG = rewards_PG - rewards_PG.mean(dim=1, keepdim=True)
    all_equal_P1 = zero_variance_groups(rewards_PG).unsqueeze(1)
    return centered_PG.masked_fill(all_equal_P1, 0.0)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, with a zero denominator (only ever over a zero
    numerator here: an all-equal group, or eps = 0) read as 1 instead of giving NaN."""
    return numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))


def grpo_advantages(rewards_PG: Tensor, scale_by_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO: ``(r - group mean) / (group std + eps)``; Dr. GRPO when ``scale_by_std=False``.

    GRPO (Shao et al., 2024, DeepSeekMath) divides by the group's (unbiased) std, which
    up-weights prompts whose rollouts nearly all agree. Dr. GRPO (Liu et al., 2025,
    "Understanding R1-Zero-Like Training") drops that division as a difficulty bias and
    keeps only ``r - group mean``. A group whose rewards are all equal gets 0 either way.
    """
    rewards_PG = _check_rewards(rewards_PG)
    num_rollouts = rewards_PG.shape[1]
    if num_rollouts < 2:
        return torch.zeros_like(rewards_PG)
    centered_PG = _group_centered(rewards_PG)
    if not scale_by_std:
        return centered_PG
    std_P1 = rewards_PG.std(dim=1, correction=1, keepdim=True)
    return _safe_divide(centered_PG, std_P1 + eps)


def rloo_advantages(rewards_PG: Tensor) -> Tensor:
    """REINFORCE leave-one-out: ``r_i`` minus the mean of the *other* G - 1 rewards.

    Ahmadian et al., 2024 ("Back to Basics"). Leaving the rollout out of its own baseline
    keeps the estimator unbiased; algebraically it equals ``G / (G - 1) * (r_i - mean)``.
    """
    rewards_PG = _check_rewards(rewards_PG)
    num_rollouts = rewards_PG.shape[1]
    if num_rollouts < 2:
        return torch.zeros_like(rewards_PG)
    others_sum_PG = rewards_PG.sum(dim=1, keepdim=True) - rewards_PG
    advantages_PG = rewards_PG - others_sum_PG / (num_rollouts - 1)
    return advantages_PG.masked_fill(zero_variance_groups(rewards_PG).unsqueeze(1), 0.0)


def reinforce_pp_advantages(rewards_PG: Tensor, eps: float = 1e-6) -> Tensor:
    """REINFORCE++-baseline: subtract the group mean, then divide by the *batch* std.

    Hu, 2025 (REINFORCE++, OpenRLHF's ``reinforce_baseline``). Centering per group removes
    the prompt's difficulty; scaling by one std over the whole batch (all P * G centered
    values) keeps the relative weight of groups, unlike GRPO's per-group std. The centered
    values already have mean 0 over the batch, so there is no second mean to subtract.
    """
    rewards_PG = _check_rewards(rewards_PG)
    if rewards_PG.shape[1] < 2:
        return torch.zeros_like(rewards_PG)
    centered_PG = _group_centered(rewards_PG)
    # G >= 2 here, so the batch has at least two values and the unbiased std is finite.
    return _safe_divide(centered_PG, centered_PG.std(correction=1) + eps)


def _dr_grpo_advantages(rewards_PG: Tensor, eps: float = 1e-6) -> Tensor:
    """Dr. GRPO, ``r - group mean`` (``eps`` is accepted for a uniform signature, unused)."""
    return grpo_advantages(rewards_PG, scale_by_std=False, eps=eps)


def _rloo_estimator(rewards_PG: Tensor, eps: float = 1e-6) -> Tensor:
    """RLOO with the uniform ``(rewards_PG, eps)`` signature; RLOO divides by nothing."""
    return rloo_advantages(rewards_PG)


# Every value can be called as ``estimator(rewards_PG, eps=eps)`` and returns (P, G).
# A plain dict, not a decorator registry: the whole menu is readable here.
ADVANTAGE_ESTIMATORS: dict[str, Callable[..., Tensor]] = {
    "grpo": grpo_advantages,
    "grpo_no_std": _dr_grpo_advantages,
    "rloo": _rloo_estimator,
    "reinforce_pp": reinforce_pp_advantages,
}


def compute_advantages(name: str, rewards_PG: Tensor, eps: float = 1e-6) -> Tensor:
    """Advantages (P, G) from the estimator called ``name`` (a key of ADVANTAGE_ESTIMATORS)."""
    estimator = ADVANTAGE_ESTIMATORS.get(name)
    if estimator is None:
        allowed = ", ".join(repr(key) for key in ADVANTAGE_ESTIMATORS)
        raise ValueError(f"unknown advantage estimator {name!r}; allowed: {allowed}")
    return estimator(rewards_PG, eps=eps)


def zero_variance_groups(rewards_PG: Tensor) -> Tensor:
    """(P,) bool: True for groups whose rewards are all equal.

    Such a group carries no learning signal under any group baseline (all its advantages
    are 0), yet it would still count in the loss denominators and dilute the update, so
    the demo drops it before the update (as DAPO's dynamic sampling does). A group of one
    rollout is trivially all-equal.
    """
    rewards_PG = _check_rewards(rewards_PG)
    return (rewards_PG == rewards_PG[:, :1]).all(dim=1)
