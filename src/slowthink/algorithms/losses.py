"""The clipped policy-gradient loss and how per-token losses become one scalar.

The policy loss is PPO's clipped surrogate (Schulman et al., 2017) with an asymmetric
band ``[1 - clip_low, 1 + clip_high]`` (DAPO's "clip-higher" when clip_high > clip_low),
applied per token with a per-sequence advantage (outcome rewards, section 2).

Aggregation is where micro-batching can silently change the update. ``aggregate_loss``
divides by *global* counts (the whole mini-batch, over all micro-batches and ranks), so
that summing its result over micro-batches (gradient accumulation), or over ranks (a
data-parallel all-reduce of summed gradients), gives exactly the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOSS_AGGREGATIONS = ("token_mean", "seq_mean", "constant")


@dataclass(frozen=True)
class PolicyLossTerms:
    """The per-token pieces of the clipped policy loss, all (B, T), unmasked.

    loss_BT:    -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)
    ratio_BT:   pi(token) / pi_old(token), the importance ratio
    clipped_BT: True where the clipped branch was taken and made a difference (clipped
                loss > unclipped loss); its masked mean is verl's ``pg_clipfrac``
    """

    loss_BT: Tensor
    ratio_BT: Tensor
    clipped_BT: Tensor


def clipped_policy_loss(
    logprobs_BT: Tensor,
    old_logprobs_BT: Tensor,
    advantages_B: Tensor,
    clip_low: float,
    clip_high: float,
    log_ratio_clamp: float = 20.0,
) -> PolicyLossTerms:
    """Per-token clipped surrogate loss for current and sampling-policy log-probabilities.

    ``advantages_B`` is one advantage per sequence, broadcast over T; a (B, T) tensor of
    per-token advantages is accepted as well. ``old_logprobs_BT`` is treated as a constant.
    On a fully on-policy step (``old_logprobs = logprobs.detach()``) the ratio is exactly 1
    and the gradient is the plain policy gradient ``-A * grad logprobs``.
    ``log_ratio_clamp`` bounds the log-ratio (as verl does) so that the ratio stays finite.
    """
    if logprobs_BT.shape != old_logprobs_BT.shape:
        raise ValueError(f"logprobs_BT {tuple(logprobs_BT.shape)} and old_logprobs_BT {tuple(old_logprobs_BT.shape)} must have the same shape")
    if not 0.0 <= clip_low < 1.0 or clip_high < 0.0:
        raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    advantages_BT = _broadcast_advantages(advantages_B, logprobs_BT.shape)

    log_ratio_BT = (logprobs_BT - old_logprobs_BT.detach()).clamp(min=-log_ratio_clamp, max=log_ratio_clamp)
    ratio_BT = torch.exp(log_ratio_BT)
    unclipped_loss_BT = -advantages_BT * ratio_BT
    clipped_loss_BT = -advantages_BT * ratio_BT.clamp(min=1.0 - clip_low, max=1.0 + clip_high)
    # The pessimistic (larger) loss: the ratio stops earning once it leaves the band in the
    # direction the advantage pushes it, and there the clamp makes the gradient 0. The two
    # branches differ only outside the band; ``where`` (not ``maximum``, which splits the
    # gradient of a tie in half between them) sends every in-band gradient through the
    # unclipped branch, so an on-policy step is exactly the plain policy gradient.
    clipped_BT = clipped_loss_BT > unclipped_loss_BT
    loss_BT = torch.where(clipped_BT, clipped_loss_BT, unclipped_loss_BT)
    return PolicyLossTerms(loss_BT=loss_BT, ratio_BT=ratio_BT, clipped_BT=clipped_BT)


def _broadcast_advantages(advantages: Tensor, shape_BT: torch.Size) -> Tensor:
    """(B,) or (B, T) advantages as (B, T), or an error naming both shapes."""
    if advantages.ndim == 1 and advantages.shape[0] == shape_BT[0]:
        return advantages.unsqueeze(1).expand(shape_BT)
    if advantages.shape == shape_BT:
        return advantages
    raise ValueError(f"advantages must have shape ({shape_BT[0]},) or {tuple(shape_BT)} to match logprobs, got {tuple(advantages.shape)}")


def aggregate_loss(
    loss_BT: Tensor,
    mask_BT: Tensor,
    mode: str,
    num_sequences: int,
    num_tokens: int,
    max_length: int | None = None,
) -> Tensor:
    """Scalar loss of one micro-batch, normalised by the GLOBAL mini-batch counts.

    ``num_sequences`` and ``num_tokens`` (mask sum) count the whole mini-batch over all
    micro-batches and ranks, so the sum of this value over micro-batches is the full-batch
    loss, whatever the micro-batch size. Modes:

    - ``token_mean``: sum(loss * mask) / num_tokens. Every token weighs the same, so long
      responses weigh more (DAPO's token-level loss; the demo's choice).
    - ``seq_mean``: sum_b(sum_t(loss * mask) / max(len_b, 1)) / num_sequences, len_b the
      mask sum of row b: every sequence weighs the same (original GRPO).
    - ``constant``: sum(loss * mask) / (max_length * num_sequences): Dr. GRPO's constant
      normaliser, free of the length bias of the other two; needs ``max_length``.

    A row with an empty mask contributes 0 but still counts in ``num_sequences``.
    """
    if loss_BT.shape != mask_BT.shape:
        raise ValueError(f"loss_BT {tuple(loss_BT.shape)} and mask_BT {tuple(mask_BT.shape)} must have the same shape")
    if mode not in LOSS_AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}; allowed: {', '.join(map(repr, LOSS_AGGREGATIONS))}")
    if num_sequences < 1 or num_tokens < 0:
        raise ValueError(f"need num_sequences >= 1 and num_tokens >= 0, got {num_sequences} and {num_tokens}")
    mask_BT = mask_BT.to(loss_BT.dtype)
    masked_loss_BT = loss_BT * mask_BT

    if mode == "token_mean":
        # A mini-batch with no unmasked token has loss 0; do not divide by 0.
        return masked_loss_BT.sum() / max(num_tokens, 1)
    if mode == "seq_mean":
        lengths_B = mask_BT.sum(dim=1).clamp(min=1.0)
        return (masked_loss_BT.sum(dim=1) / lengths_B).sum() / num_sequences
    if max_length is None or max_length < 1:
        raise ValueError(f"loss aggregation 'constant' needs max_length >= 1 (the generation budget), got {max_length}")
    return masked_loss_BT.sum() / (max_length * num_sequences)


def masked_mean(values_BT: Tensor, mask_BT: Tensor) -> Tensor:
    """Mean of ``values`` over unmasked entries (0 when none is unmasked); for metrics."""
    if values_BT.shape != mask_BT.shape:
        raise ValueError(f"values {tuple(values_BT.shape)} and mask {tuple(mask_BT.shape)} must have the same shape")
    values_BT = values_BT if values_BT.is_floating_point() else values_BT.float()
    mask_BT = mask_BT.to(values_BT.dtype)
    return (values_BT * mask_BT).sum() / mask_BT.sum().clamp(min=1.0)
