"""One policy update over a batch of scored rollouts: mini-batches, epochs, micro-batches.

The loss of a micro-batch is the clipped policy-gradient loss plus the KL penalty (when
it sits in the loss) minus the entropy bonus, each aggregated with denominators counted
over the whole mini-batch on all ranks, so micro-batch size and data-parallel split
never change the update.

Mini-batches are planned over the step's kept rows on *all* ranks (``minibatch_plan``):
their number is the config's, never the number of rows that survived selection, and
every rank runs the same number of micro-batches in each (zero-weight padding rows where
its share is smaller), so the ranks' collectives always pair up: a rank with fewer rows must
not hang the others.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from slowthink.algorithms.kl import kl_estimate
from slowthink.algorithms.losses import aggregate_loss, clipped_policy_loss
from slowthink.training.batch import SequenceBatch, padding_batch, split_batch
from slowthink.training.distributed import DistInfo, all_gather_objects, all_reduce_sum
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


def micro_batch_loss(
    model: Any, micro: SequenceBatch, settings: LossSettings, num_sequences: int, num_tokens: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """The micro-batch's share of the mini-batch loss, and its (token-summed) statistics."""
    micro = micro.to(next(model.parameters()).device)
    logprobs_BT, entropy_BT = forward_logprobs(model, micro.input_ids_BL, micro.attention_mask_BL, settings.temperature, with_entropy=True)
    old_BT = logprobs_BT.detach() if settings.old_is_current else micro.old_logprobs_BT
    mask_BT = micro.loss_mask_BT
    terms = clipped_policy_loss(logprobs_BT, old_BT, micro.advantages_B, settings.clip_low, settings.clip_high)

    def aggregate(values_BT: torch.Tensor) -> torch.Tensor:
        return aggregate_loss(values_BT, mask_BT, settings.aggregation, num_sequences, num_tokens, settings.max_length)

    loss = aggregate(terms.loss_BT)
    sums = {"pg_loss": loss.detach()}
    if settings.has_reference:
        kl_BT = kl_estimate(logprobs_BT, micro.ref_logprobs_BT, settings.kl_estimator)
        if settings.kl_coef > 0:
            loss = loss + settings.kl_coef * aggregate(kl_BT)
        sums["kl_sum"] = (kl_BT.detach() * mask_BT).sum()
    if settings.entropy_coef > 0:
        loss = loss - settings.entropy_coef * aggregate(entropy_BT)
    # Token sums, turned into means by the caller (micro-batches differ in size).
    sums["entropy_sum"] = (entropy_BT.detach() * mask_BT).sum()
    sums["clipped_sum"] = (terms.clipped_BT.float() * mask_BT).sum()
    sums["ratio_sum"] = (terms.ratio_BT.detach() * mask_BT).sum()
    sums["tokens"] = mask_BT.sum()
    # One device-to-host copy for all of them (a GPU waits for each one separately).
    values = torch.stack([value.float() for value in sums.values()]).tolist()
    stats = dict(zip(sums, values))
    return loss, stats


def minibatch_plan(num_rows: int, num_minibatches: int, epochs: int, shuffle_seed: int) -> list[torch.Tensor]:
    """Global row positions of every mini-batch, epoch by epoch: ``epochs * num_minibatches``.

    The config fixes the number of optimizer steps of an RL step (epochs x prompts_per_step
    / prompts_per_update), and the LR schedule is planned for exactly that many. Whatever
    number of rows survived selection, they are split as evenly as possible (sizes differ
    by at most one row) into that many mini-batches: no trailing half-size mini-batch gets
    a full Adam step, and the count never depends on filtering. Later epochs see the rows
    in a new seeded order, as PPO does. With fewer rows than mini-batches some are empty.
    """
    plan = []
    for epoch in range(epochs):
        order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(shuffle_seed + epoch)) if epoch else torch.arange(num_rows)
        plan.extend(torch.tensor_split(order, num_minibatches))
    return plan


def rank_micro_batches(batch: SequenceBatch, local_rows: torch.Tensor, rows_per_rank: torch.Tensor, micro_batch_size: int) -> list[SequenceBatch]:
    """This rank's micro-batches of one mini-batch, padded with zero-weight rows to the
    count of the rank with the most rows, so every rank runs the same backward passes."""
    count = int(torch.div(rows_per_rank + micro_batch_size - 1, micro_batch_size, rounding_mode="floor").max())
    # Rows sorted by length, so each micro-batch holds similar lengths and ``trimmed`` drops
    # their shared padding (the loss is a sum over the mini-batch: the order changes nothing).
    lengths = batch.attention_mask_BL[local_rows].sum(-1)
    local_rows = local_rows[torch.argsort(lengths, stable=True)]
    mine = split_batch(batch.select(local_rows), micro_batch_size) if len(local_rows) else []
    return mine + [padding_batch()] * (count - len(mine))


def update_policy(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batch: SequenceBatch,
    settings: LossSettings,
    num_minibatches: int,
    epochs: int,
    micro_batch_size: int,
    grad_clip: float,
    info: DistInfo = DistInfo(),
    shuffle_seed: int = 0,
    row_ranks_K: torch.Tensor | None = None,
) -> dict[str, float | None]:
    """Exactly ``epochs * num_minibatches`` scheduler steps over the step's kept rows.

    ``batch`` holds this rank's rows; ``row_ranks_K`` the owner rank of each of the step's
    K kept rows in global order (None: one process holds them all). Every rank derives the
    same mini-batch plan from it, so all ranks make the same collectives whatever their
    filters dropped. A mini-batch with no tokens anywhere (fewer rows than mini-batches)
    takes no optimizer step, but the schedule still advances: its horizon is the plan.
    Statistics are global; with no optimizer step they are None (null in the metrics).
    """
    if row_ranks_K is None:
        if info.enabled:
            raise ValueError("update_policy on several ranks needs row_ranks_K (the owner rank of every kept row)")
        row_ranks_K = torch.zeros(len(batch), dtype=torch.long)
    mine_K = row_ranks_K == info.rank
    # Position of each of this rank's global rows within ``batch`` (its rows, in global order).
    local_index_K = torch.cumsum(mine_K.long(), 0) - 1
    totals: dict[str, float] = defaultdict(float)
    grad_norms: list[float] = []
    for rows in minibatch_plan(len(row_ranks_K), num_minibatches, epochs, shuffle_seed):
        local_rows = local_index_K[rows[mine_K[rows]]]
        num_tokens = int(all_reduce_sum(float(batch.select(local_rows).num_tokens), info))
        if num_tokens == 0:
            _advance_schedule(scheduler)
            continue
        optimizer.zero_grad(set_to_none=True)
        rows_per_rank = torch.bincount(row_ranks_K[rows], minlength=info.world_size)
        micros = rank_micro_batches(batch, local_rows, rows_per_rank, micro_batch_size)
        for index, micro in enumerate(micros):
            # DDP decides at the forward whether the backward all-reduces: both sit inside.
            with gradient_sync(model, index == len(micros) - 1):
                loss, stats = micro_batch_loss(model, micro.trimmed(), settings, len(rows), num_tokens)
                # DDP averages gradients over ranks; our denominators are already global.
                (loss * info.world_size).backward()
            for key, value in stats.items():
                totals[key] += value
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
        grad_norms.append(float(norm))
        optimizer.step()
        scheduler.step()
        if not totals["updates"]:
            # The first mini-batch is the one whose old policy is the sampler (before any step).
            totals["first_ratio_sum"], totals["first_tokens"] = totals["ratio_sum"], totals["tokens"]
        totals["updates"] += 1
    # Free the gradients now: they would otherwise sit beside the rollout engine's weights
    # and KV cache until the next update (docs/scale.md, memory while generating).
    optimizer.zero_grad(set_to_none=True)
    return update_metrics(totals, grad_norms, settings.has_reference, info)


def gradient_sync(model: Any, last: bool) -> contextlib.AbstractContextManager:
    """DDP all-reduces the gradients at the last micro-batch's backward only (``no_sync``
    before it, around forward and backward): the sum over ranks of each rank's accumulated gradient is the same, and every
    rank runs the same number of micro-batches (``rank_micro_batches``), so they pair up."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _advance_schedule(scheduler: Any) -> None:
    """Step the LR schedule for a skipped optimizer step (torch warns when the very first
    scheduler step comes before any optimizer step; here that order is intended)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        scheduler.step()


def update_metrics(totals: dict[str, float], grad_norms: list[float], has_reference: bool, info: DistInfo) -> dict[str, float | None]:
    """Means over every rank's tokens and every optimizer step; None when nothing trained,
    so a step without an update draws a gap in the curves, not a false dip to 0."""
    keys = ("pg_loss", "entropy_sum", "clipped_sum", "ratio_sum", "tokens", "kl_sum", "first_ratio_sum", "first_tokens")
    summed = dict(zip(keys, (sum(parts) for parts in zip(*all_gather_objects([totals[k] for k in keys], info)))))
    updates = totals["updates"]  # the same on every rank
    tokens = summed["tokens"]
    trained = updates > 0 and tokens > 0

    def per_token(key: str) -> float | None:
        return summed[key] / tokens if trained else None

    metrics: dict[str, float | None] = {
        "pg_loss": summed["pg_loss"] / updates if trained else None,
        "entropy": per_token("entropy_sum"),
        "clip_fraction": per_token("clipped_sum"),
        "importance_ratio": per_token("ratio_sum"),
        # Before any step the policy is the one that sampled: 1 unless old log-probs disagree.
        "importance_ratio_first": summed["first_ratio_sum"] / summed["first_tokens"] if trained else None,
        # Gradients are all-reduced before clipping, so every rank measures the same norm.
        "grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else None,
        "optimizer_steps": updates,
        "trained_tokens": tokens,
    }
    if has_reference:
        metrics["kl"] = per_token("kl_sum")
    return metrics
