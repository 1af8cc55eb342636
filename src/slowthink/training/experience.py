"""From scored rollouts to a training batch: advantages, KL penalty, selection and masking.

Order of operations for one step (P prompts x G rollouts over *all* ranks):
  1. every rank rolls out and rewards its own share of the prompts; the small per-row
     facts (outcome reward, correct, length, finished, sequence KL) are all-gathered,
     so that every rank sees the whole step's (P, G) tensors and computes the same
     selection and advantage statistics (``gather_outcomes``);
  2. a keep mask: overlength masking, question or response selection (section 4.2.1),
     and groups with no reward variance dropped (judged on the *outcome* rewards, over
     the finished rows when overlength masking is on);
  3. advantages from the chosen estimator over the valid rows of each group (the
     finished rows under overlength masking; REINFORCE++ with G = 1 over the batch);
  4. the KL penalty, when it sits in the reward, is applied *after* the outcome
     advantage: ``A_i = A_outcome_i - kl_coef * KL_i`` with ``KL_i`` the sequence's summed
     per-token KL. Subtracting it from the reward *before* GRPO's ``(r - mean) / std``
     let KL noise alone give an all-correct group O(1) advantages, and the division by
     the group std cancelled the coefficient. As placed here an all-correct group keeps
     an outcome advantage of 0 and is still dropped, and the penalty is linear in the
     coefficient. (OpenRLHF applies it per token to the return; one scalar per sequence
     is the same total penalty with the sequence-level credit the paper's outcome
     rewards already use.)
  5. each rank keeps its own kept rows; ``row_ranks_K`` (the owner of each of the K kept
     rows, in global order) lets the update split the *global* kept rows into mini-batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from slowthink.algorithms.advantages import compute_advantages, zero_variance_groups
from slowthink.algorithms.selection import overlength_mask, question_selection_mask, response_selection_mask
from slowthink.rollout.generator import Completion
from slowthink.training.batch import SequenceBatch, build_sequence_batch
from slowthink.training.distributed import DistInfo, all_gather_objects


@dataclass(frozen=True)
class SelectionSettings:
    """The ``algorithm.*`` fields selection and advantages need, as plain values."""

    advantage: str  # a key of ADVANTAGE_ESTIMATORS
    drop_uniform_groups: bool  # drop groups whose (valid) outcome rewards all agree
    question_selection: bool  # section 4.2.1: keep questions whose correct answers are longer
    response_selection: bool  # section 4.2.1: the longest correct and shortest wrong response
    overlength_masking: bool  # section 4.2.1: truncated rows leave the loss and the baselines


@dataclass(frozen=True)
class RowOutcomes:
    """Per-rollout facts of a step, all (P, G): P prompts (one rank's, or every rank's), G rollouts."""

    rewards_PG: torch.Tensor  # float, the outcome reward (no KL in it)
    correct_PG: torch.Tensor  # bool, the checker's verdict
    lengths_PG: torch.Tensor  # long, model-sampled tokens
    finished_PG: torch.Tensor  # bool, ended before the length limit
    kl_PG: torch.Tensor  # float, summed per-token KL to the reference (0 when not needed)


def rollout_sequences(prompt_ids: Sequence[Sequence[int]], completions: Sequence[Completion], group_size: int, pad_id: int) -> SequenceBatch:
    """All P*G rollouts as one padded batch (prompt-major), with sampling log-probs as ``old``."""
    return build_sequence_batch(
        [prompt_ids[c.prompt_index] for c in completions],
        [c.token_ids for c in completions],
        [c.loss_mask for c in completions],
        pad_id,
        old_logprobs=[c.logprobs for c in completions],
    )


def gather_outcomes(local: RowOutcomes, info: DistInfo) -> RowOutcomes:
    """Every rank's rows, rank-major (rank 0's prompts first): the same tensors on every rank."""
    if not info.enabled:
        return local
    gathered = all_gather_objects({f.name: getattr(local, f.name).cpu() for f in fields(local)}, info)
    return RowOutcomes(**{f.name: torch.cat([g[f.name] for g in gathered]) for f in fields(local)})


def baseline_rows(outcomes: RowOutcomes, settings: SelectionSettings) -> torch.Tensor:
    """(P, G) bool: the rows the baselines and the uniform-group test look at."""
    if settings.overlength_masking:
        return overlength_mask(outcomes.finished_PG)
    return torch.ones_like(outcomes.finished_PG, dtype=torch.bool)


def uniform_groups(rewards_PG: torch.Tensor, valid_PG: torch.Tensor) -> torch.Tensor:
    """(P,) bool: groups with no outcome signal. With G = 1 (REINFORCE++ over the batch)
    the batch is the group: every row is dropped only when the whole batch agrees."""
    if rewards_PG.shape[1] == 1:
        return zero_variance_groups(rewards_PG.T, valid_PG.T).expand(rewards_PG.shape[0])
    return zero_variance_groups(rewards_PG, valid_PG)


def keep_mask(outcomes: RowOutcomes, settings: SelectionSettings) -> torch.Tensor:
    """(P, G) bool: which rollouts train this step."""
    keep = torch.ones_like(outcomes.rewards_PG, dtype=torch.bool)
    if settings.overlength_masking:
        keep &= overlength_mask(outcomes.finished_PG)
    if settings.question_selection:
        keep &= question_selection_mask(outcomes.correct_PG, outcomes.lengths_PG)[:, None]
    if settings.response_selection:
        keep &= response_selection_mask(outcomes.correct_PG, outcomes.lengths_PG)
    if settings.drop_uniform_groups:
        keep &= ~uniform_groups(outcomes.rewards_PG, baseline_rows(outcomes, settings))[:, None]
    return keep


def step_advantages(outcomes: RowOutcomes, settings: SelectionSettings, kl_coef: float, train_PG: torch.Tensor | None = None) -> torch.Tensor:
    """(P, G) outcome advantages over the baseline rows, minus the KL-in-reward penalty;
    ``train_PG`` (the keep mask) bounds a batch-wide scale to the rows that train (REINFORCE++)."""
    advantages_PG = compute_advantages(settings.advantage, outcomes.rewards_PG, valid_PG=baseline_rows(outcomes, settings), train_PG=train_PG)
    if kl_coef > 0:
        advantages_PG = advantages_PG - kl_coef * outcomes.kl_PG
    return advantages_PG


def select_training_rows(
    sequences: SequenceBatch, outcomes: RowOutcomes, settings: SelectionSettings, kl_coef: float, info: DistInfo = DistInfo()
) -> tuple[SequenceBatch, torch.Tensor, dict[str, float]]:
    """This rank's kept rows with their advantages, the owner rank of each of the step's K
    kept rows (global order), and selection statistics. ``outcomes`` covers every rank's rows,
    ``sequences`` this rank's only; ranks hold equal shares. R = P x G: the step's rows over
    every rank, in global order."""
    keep_PG = keep_mask(outcomes, settings)
    advantages_PG = step_advantages(outcomes, settings, kl_coef, train_PG=keep_PG)
    keep_R = keep_PG.flatten()
    rows_per_rank = len(keep_R) // info.world_size
    mine = slice(info.rank * rows_per_rank, (info.rank + 1) * rows_per_rank)
    local_rows = keep_R[mine].nonzero().squeeze(-1)
    selected = sequences.with_(advantages_B=advantages_PG.flatten()[mine]).select(local_rows)
    row_ranks_K = torch.div(keep_R.nonzero().squeeze(-1), rows_per_rank, rounding_mode="floor")
    stats = {
        "kept_fraction": float(keep_R.float().mean()),
        "uniform_groups": float(uniform_groups(outcomes.rewards_PG, baseline_rows(outcomes, settings)).float().mean()),
        "advantage_abs_mean": float(advantages_PG.abs().mean()),
    }
    if kl_coef > 0:
        stats["kl_reward_penalty"] = float((kl_coef * outcomes.kl_PG).mean())
    return selected, row_ranks_K, stats


def sequence_kl(logprobs_BT: torch.Tensor, ref_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor, estimator: str) -> torch.Tensor:
    """(B,) summed per-token KL of each sequence (the KL-in-reward penalty)."""
    from slowthink.algorithms.kl import kl_estimate

    return (kl_estimate(logprobs_BT, ref_logprobs_BT, estimator) * mask_BT).sum(-1)
