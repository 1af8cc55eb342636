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
- ``valid_PG`` (optional, bool) says which rollouts count: the baseline (mean, std) and
  the uniform-group test see the valid rows only, and invalid rows get advantage 0. With
  overlength masking the truncated responses are invalid (section 4.2.1 excludes them
  from training; kept in the baseline they shifted it: 4 finished wrong answers next to
  4 truncated ones got +0.935 each under the still3 reward).
- A group of one valid rollout has no baseline to compare against: its advantage is 0
  under GRPO, Dr. GRPO and RLOO. REINFORCE++ with one rollout per prompt (G = 1) uses
  the whole batch as its baseline instead (Hu, 2025), so it still learns.
- A group whose rewards are all equal gets exactly 0 (not a rounding residue such as
  ``0.1 - mean([0.1, 0.1, 0.1]) = -1.4e-17`` blown up by a tiny std), even with eps = 0.
- Integer rewards are promoted to float32; floating rewards keep their dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _check_rewards(rewards_PG: Tensor) -> Tensor:
    """Return the rewards as a floating (P, G) tensor, or say what shape was given."""
    if rewards_PG.ndim != 2:
        raise ValueError(f"rewards_PG must have shape (prompts, rollouts per prompt), got shape {tuple(rewards_PG.shape)}")
    return rewards_PG if rewards_PG.is_floating_point() else rewards_PG.float()


def _valid(rewards_PG: Tensor, valid_PG: Tensor | None) -> Tensor:
    """(P, G) bool of the rows that count (all of them when ``valid_PG`` is None)."""
    if valid_PG is None:
        return torch.ones_like(rewards_PG, dtype=torch.bool)
    if valid_PG.shape != rewards_PG.shape:
        raise ValueError(f"valid_PG {tuple(valid_PG.shape)} must have the rewards' shape {tuple(rewards_PG.shape)}")
    return valid_PG.bool()


def _group_centered(rewards_PG: Tensor, valid_PG: Tensor) -> Tensor:
    """(P, G) ``r - mean of the group's valid rows``; exactly 0 on invalid rows and in
    groups whose valid rewards are all equal."""
    count_P1 = valid_PG.sum(dim=1, keepdim=True).clamp(min=1)
    mean_P1 = (rewards_PG * valid_PG).sum(dim=1, keepdim=True) / count_P1
    centered_PG = (rewards_PG - mean_P1).masked_fill(~valid_PG, 0.0)
    all_equal_P1 = zero_variance_groups(rewards_PG, valid_PG).unsqueeze(1)
    return centered_PG.masked_fill(all_equal_P1, 0.0)


def _masked_std(centered: Tensor, valid: Tensor, dim: int | None = None) -> Tensor:
    """Unbiased std of already-centred values over the valid entries (0 with < 2 of them)."""
    if dim is None:
        count, squares = valid.sum(), (centered.square() * valid).sum()
    else:
        count, squares = valid.sum(dim=dim, keepdim=True), (centered.square() * valid).sum(dim=dim, keepdim=True)
    return torch.sqrt(squares / (count - 1).clamp(min=1))


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, with a zero denominator (only ever over a zero
    numerator here: an all-equal group, or eps = 0) read as 1 instead of giving NaN."""
    return numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))


def grpo_advantages(rewards_PG: Tensor, scale_by_std: bool = True, eps: float = 1e-6, valid_PG: Tensor | None = None) -> Tensor:
    """GRPO: ``(r - group mean) / (group std + eps)``; Dr. GRPO when ``scale_by_std=False``.

    GRPO (Shao et al., 2024, DeepSeekMath) divides by the group's (unbiased) std, which
    up-weights prompts whose rollouts nearly all agree. Dr. GRPO (Liu et al., 2025,
    "Understanding R1-Zero-Like Training") drops that division as a difficulty bias and
    keeps only ``r - group mean``. A group whose rewards are all equal gets 0 either way.
    """
    rewards_PG = _check_rewards(rewards_PG)
    valid_PG = _valid(rewards_PG, valid_PG)
    centered_PG = _group_centered(rewards_PG, valid_PG)
    if not scale_by_std:
        return centered_PG
    return _safe_divide(centered_PG, _masked_std(centered_PG, valid_PG, dim=1) + eps)


def rloo_advantages(rewards_PG: Tensor, valid_PG: Tensor | None = None) -> Tensor:
    """REINFORCE leave-one-out: ``r_i`` minus the mean of the *other* valid rewards.

    Ahmadian et al., 2024 ("Back to Basics"). Leaving the rollout out of its own baseline
    keeps the estimator unbiased; algebraically it equals ``n / (n - 1) * (r_i - mean)``
    for a group of n valid rollouts.
    """
    rewards_PG = _check_rewards(rewards_PG)
    valid_PG = _valid(rewards_PG, valid_PG)
    count_P1 = valid_PG.sum(dim=1, keepdim=True).to(rewards_PG.dtype)
    # n < 2 leaves a zero centred value (uniform group); the factor then does not matter.
    return _group_centered(rewards_PG, valid_PG) * count_P1 / (count_P1 - 1).clamp(min=1)


def reinforce_pp_advantages(rewards_PG: Tensor, eps: float = 1e-6, valid_PG: Tensor | None = None, train_PG: Tensor | None = None) -> Tensor:
    """REINFORCE++: centre, then divide by one std over the whole *batch*.

    Hu, 2025 (REINFORCE++). With G >= 2 this is OpenRLHF's ``reinforce_baseline``:
    centering per group removes the prompt's difficulty; scaling by one std over the whole
    batch (all valid centred values) keeps the relative weight of groups, unlike GRPO's
    per-group std. With G = 1 there is no group: the rewards are centred and scaled over
    the whole batch (plain REINFORCE++). "The batch" is whatever the caller passes: the
    RL recipe passes every rank's rollouts, so the statistics are global.

    ``train_PG`` (bool, default: every row) says which rows the update trains on: only
    those enter the batch std. Rows that selection drops (all-equal groups, whose centred
    values are 0) never train, and counting them shrank the std, so one informative group's
    advantages went from 1.5 to 3.35 to 6.87 as 0, 3 or 15 solved groups were added.
    """
    rewards_PG = _check_rewards(rewards_PG)
    valid_PG = _valid(rewards_PG, valid_PG)
    scaled_rows_PG = valid_PG & _valid(rewards_PG, train_PG)
    # One rollout per prompt: the batch is the group (a (1, P) view of the same rows).
    single = rewards_PG.shape[1] == 1
    if single:
        rewards_PG, valid_PG, scaled_rows_PG = rewards_PG.T, valid_PG.T, scaled_rows_PG.T
    centered_PG = _group_centered(rewards_PG, valid_PG)
    advantages_PG = _safe_divide(centered_PG, _masked_std(centered_PG, scaled_rows_PG) + eps)
    return advantages_PG.T if single else advantages_PG


def _grpo_estimator(rewards_PG: Tensor, eps: float = 1e-6, valid_PG: Tensor | None = None, train_PG: Tensor | None = None) -> Tensor:
    """GRPO with the uniform signature; per-group statistics do not depend on ``train_PG``."""
    return grpo_advantages(rewards_PG, eps=eps, valid_PG=valid_PG)


def _dr_grpo_advantages(rewards_PG: Tensor, eps: float = 1e-6, valid_PG: Tensor | None = None, train_PG: Tensor | None = None) -> Tensor:
    """Dr. GRPO, ``r - group mean`` (``eps`` and ``train_PG`` are accepted for a uniform signature, unused)."""
    return grpo_advantages(rewards_PG, scale_by_std=False, eps=eps, valid_PG=valid_PG)


def _rloo_estimator(rewards_PG: Tensor, eps: float = 1e-6, valid_PG: Tensor | None = None, train_PG: Tensor | None = None) -> Tensor:
    """RLOO with the uniform ``(rewards_PG, eps, valid_PG)`` signature; RLOO divides by nothing."""
    return rloo_advantages(rewards_PG, valid_PG)


# Every value can be called as ``estimator(rewards_PG, eps=eps, valid_PG=valid_PG, train_PG=train_PG)`` and returns (P, G).
# A plain dict, not a decorator registry: the whole menu is readable here.
ADVANTAGE_ESTIMATORS: dict[str, Callable[..., Tensor]] = {
    "grpo": _grpo_estimator,
    "grpo_no_std": _dr_grpo_advantages,
    "rloo": _rloo_estimator,
    "reinforce_pp": reinforce_pp_advantages,
}


def compute_advantages(name: str, rewards_PG: Tensor, eps: float = 1e-6, valid_PG: Tensor | None = None, train_PG: Tensor | None = None) -> Tensor:
    """Advantages (P, G) from the estimator called ``name`` (a key of ADVANTAGE_ESTIMATORS);
    only the ``valid_PG`` rows (all when None) enter the baselines, and only the rows that
    train (``train_PG``, all when None) enter a batch-wide scale (REINFORCE++)."""
    estimator = ADVANTAGE_ESTIMATORS.get(name)
    if estimator is None:
        allowed = ", ".join(repr(key) for key in ADVANTAGE_ESTIMATORS)
        raise ValueError(f"unknown advantage estimator {name!r}; allowed: {allowed}")
    return estimator(rewards_PG, eps=eps, valid_PG=valid_PG, train_PG=train_PG)


def zero_variance_groups(rewards_PG: Tensor, valid_PG: Tensor | None = None) -> Tensor:
    """(P,) bool: True for groups whose valid rewards are all equal (or that have < 2 valid).

    Such a group carries no learning signal under any group baseline (all its advantages
    are 0), yet it would still count in the loss denominators and dilute the update, so
    the demo drops it before the update (as DAPO's dynamic sampling does). A group of one
    rollout is trivially all-equal.
    """
    rewards_PG = _check_rewards(rewards_PG)
    valid_PG = _valid(rewards_PG, valid_PG)
    inf = torch.tensor(float("inf"), dtype=rewards_PG.dtype)
    low_P = torch.where(valid_PG, rewards_PG, inf).amin(dim=1)
    high_P = torch.where(valid_PG, rewards_PG, -inf).amax(dim=1)
    return (valid_PG.sum(dim=1) < 2) | (low_P == high_P)
