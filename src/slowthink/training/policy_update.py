"""One policy update over a batch of scored rollouts: mini-batches, epochs, micro-batches.

The loss of a micro-batch is the clipped policy-gradient loss plus the KL penalty (when
it sits in the loss) minus the entropy bonus, each aggregated with denominators counted
over the whole mini-batch on all ranks, so micro-batch size and data-parallel split
never change the update.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from slowthink.algorithms.kl import kl_estimate
from slowthink.algorithms.losses import aggregate_loss, clipped_policy_loss, masked_mean
from slowthink.training.batch import SequenceBatch, split_batch
from slowthink.training.distributed import DistInfo, all_reduce_sum
from slowthink.training.logprobs import forward_logprobs


@dataclass(frozen=True)
class LossSettings:
    """Everything the loss needs, as plain values (no config object reaches the math)."""

    clip_low: float
    clip_high: float
    aggregation: str
    max_length: int  # the "constant" (Dr. GRPO) normalizer
    kl_coef: float  # coefficient in the loss (0 when KL is off or in the reward)
    kl_estimator: str
    entropy_coef: float
    temperature: float
    # Old log-probs are the current ones, detached (one on-policy update: ratio exactly 1).
    old_is_current: bool
    has_reference: bool


def micro_batch_loss(model: Any, micro: SequenceBatch, settings: LossSettings, num_sequences: int, num_tokens: int) -> tuple[torch.Tensor, dict[str, float]]:
    """The micro-batch's share of the mini-batch loss, and its (token-summed) statistics."""
    logprobs_BT, entropy_BT = forward_logprobs(model, micro.input_ids_BL, micro.attention_mask_BL, settings.temperature, with_entropy=True)
    old_BT = logprobs_BT.detach() if settings.old_is_current else micro.old_logprobs_BT
    mask_BT = micro.loss_mask_BT
    terms = clipped_policy_loss(logprobs_BT, old_BT, micro.advantages_B, settings.clip_low, settings.clip_high)

    def aggregate(values_BT: torch.Tensor) -> torch.Tensor:
        return aggregate_loss(values_BT, mask_BT, settings.aggregation, num_sequences, num_tokens, settings.max_length)

    loss = aggregate(terms.loss_BT)
    stats = {"pg_loss": float(loss.detach())}
    if settings.has_reference:
        kl_BT = kl_estimate(logprobs_BT, micro.ref_logprobs_BT, settings.kl_estimator)
        if settings.kl_coef > 0:
            loss = loss + settings.kl_coef * aggregate(kl_BT)
        stats["kl_sum"] = float((kl_BT.detach() * mask_BT).sum())
    if settings.entropy_coef > 0:
        loss = loss - settings.entropy_coef * aggregate(entropy_BT)
    # Token sums, turned into means by the caller (micro-batches differ in size).
    stats["entropy_sum"] = float((entropy_BT.detach() * mask_BT).sum())
    stats["clipped_sum"] = float((terms.clipped_BT.float() * mask_BT).sum())
    stats["ratio_sum"] = float((terms.ratio_BT.detach() * mask_BT).sum())
    stats["tokens"] = float(mask_BT.sum())
    return loss, stats


def update_policy(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: SequenceBatch,
    settings: LossSettings,
    sequences_per_update: int,
    epochs: int,
    micro_batch_size: int,
    grad_clip: float,
    info: DistInfo = DistInfo(),
    shuffle_seed: int = 0,
) -> dict[str, float]:
    """Optimizer steps over ``batch``; returns mean statistics over all updates."""
    totals: dict[str, float] = defaultdict(float)
    grad_norms: list[float] = []
    for epoch in range(epochs):
        # Later epochs see the sequences in a new (seeded) order, as PPO does.
        order = torch.randperm(len(batch), generator=torch.Generator().manual_seed(shuffle_seed + epoch)) if epoch else None
        epoch_batch = batch.select(order) if order is not None else batch
        for mini in split_batch(epoch_batch, sequences_per_update):
            num_sequences = int(all_reduce_sum(float(len(mini)), info))
            num_tokens = int(all_reduce_sum(float(mini.num_tokens), info))
            if num_tokens == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            for micro in split_batch(mini, micro_batch_size):
                loss, stats = micro_batch_loss(model, micro.trimmed(), settings, num_sequences, num_tokens)
                # DDP averages gradients over ranks; our denominators are already global.
                (loss * info.world_size).backward()
                for key, value in stats.items():
                    totals[key] += value
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
            grad_norms.append(float(norm))
            optimizer.step()
            scheduler.step()
            totals["updates"] += 1
    tokens = max(totals["tokens"], 1.0)
    metrics = {
        "pg_loss": totals["pg_loss"] / max(totals["updates"], 1.0),
        "entropy": totals["entropy_sum"] / tokens,
        "clip_fraction": totals["clipped_sum"] / tokens,
        "importance_ratio": totals["ratio_sum"] / tokens,
        "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
        "optimizer_steps": totals["updates"],
        "trained_tokens": totals["tokens"],
    }
    if settings.has_reference:
        metrics["kl"] = totals["kl_sum"] / tokens
    return metrics
