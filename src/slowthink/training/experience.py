"""From scored rollouts to a training batch: KL-in-reward, advantages, selection and masking.

Order of operations for one step (P prompts x G rollouts):
  1. rewards (P, G) from the reward model, minus the per-sequence KL penalty when the
     KL sits in the reward;
  2. advantages (P, G) from the chosen estimator over each whole group;
  3. a keep mask: overlength masking, question or response selection (section 4.2.1),
     and groups with no reward variance dropped;
  4. the kept rows become a ``SequenceBatch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from slowthink.algorithms.advantages import compute_advantages, zero_variance_groups
from slowthink.algorithms.selection import overlength_mask, question_selection_mask, response_selection_mask
from slowthink.rollout.generator import Completion
from slowthink.training.batch import SequenceBatch, build_sequence_batch


@dataclass(frozen=True)
class SelectionSettings:
    advantage: str
    drop_uniform_groups: bool
    question_selection: bool
    response_selection: bool
    overlength_masking: bool


def rollout_sequences(prompt_ids: Sequence[Sequence[int]], completions: Sequence[Completion], group_size: int, pad_id: int) -> SequenceBatch:
    """All P*G rollouts as one padded batch (prompt-major), with sampling log-probs as ``old``."""
    return build_sequence_batch(
        [prompt_ids[c.prompt_index] for c in completions],
        [c.token_ids for c in completions],
        [c.loss_mask for c in completions],
        pad_id,
        old_logprobs=[c.logprobs for c in completions],
    )


def keep_mask(rewards_PG: torch.Tensor, correct_PG: torch.Tensor, lengths_PG: torch.Tensor, finished_PG: torch.Tensor, settings: SelectionSettings) -> torch.Tensor:
    """(P, G) bool: which rollouts train this step."""
    keep = torch.ones_like(rewards_PG, dtype=torch.bool)
    if settings.overlength_masking:
        keep &= overlength_mask(finished_PG)
    if settings.question_selection:
        keep &= question_selection_mask(correct_PG, lengths_PG)[:, None]
    if settings.response_selection:
        keep &= response_selection_mask(correct_PG, lengths_PG)
    if settings.drop_uniform_groups:
        keep &= ~zero_variance_groups(rewards_PG)[:, None]
    return keep


def select_training_rows(
    sequences: SequenceBatch, rewards_PG: torch.Tensor, correct_PG: torch.Tensor, lengths_PG: torch.Tensor,
    finished_PG: torch.Tensor, settings: SelectionSettings,
) -> tuple[SequenceBatch, dict[str, float]]:
    """Advantages for every rollout, then only the kept rows (with their advantages)."""
    advantages_PG = compute_advantages(settings.advantage, rewards_PG)
    keep_PG = keep_mask(rewards_PG, correct_PG, lengths_PG, finished_PG, settings)
    rows = keep_PG.flatten().nonzero().squeeze(-1)
    selected = sequences.with_(advantages_B=advantages_PG.flatten()).select(rows)
    stats = {
        "kept_fraction": float(keep_PG.float().mean()),
        "uniform_groups": float(zero_variance_groups(rewards_PG).float().mean()),
        "advantage_abs_mean": float(advantages_PG.abs().mean()),
    }
    return selected, stats


def sequence_kl(logprobs_BT: torch.Tensor, ref_logprobs_BT: torch.Tensor, mask_BT: torch.Tensor, estimator: str) -> torch.Tensor:
    """(B,) summed per-token KL of each sequence (the KL-in-reward penalty)."""
    from slowthink.algorithms.kl import kl_estimate

    return (kl_estimate(logprobs_BT, ref_logprobs_BT, estimator) * mask_BT).sum(-1)
