"""Padded training tensors built from prompts and completions, and their mini/micro splits.

Every tensor is aligned to *targets*: position t holds the log-prob of token t+1 of the
joined sequence, so ``loss_mask_BT[b, t] == 1`` exactly where token t+1 was sampled by
the model (tool output and prompt tokens are 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch


@dataclass
class SequenceBatch:
    """B sequences of prompt + response, right-padded to a common length L (T = L - 1 targets)."""

    input_ids_BL: torch.Tensor  # (B, L) prompt + response token ids, right-padded
    attention_mask_BL: torch.Tensor  # (B, L) 1 on real tokens
    loss_mask_BT: torch.Tensor  # (B, T) 1 where the target token is a model-sampled response token
    advantages_B: torch.Tensor  # (B,) one scalar advantage per sequence (0 for SFT)
    old_logprobs_BT: torch.Tensor  # (B, T) behaviour-policy log-probs (0 where unknown)
    ref_logprobs_BT: torch.Tensor  # (B, T) reference-model log-probs (0 when no reference)

    def __len__(self) -> int:
        return self.input_ids_BL.shape[0]

    def select(self, index: torch.Tensor | slice) -> SequenceBatch:
        return SequenceBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_(self, **changes) -> SequenceBatch:
        return replace(self, **changes)

    def to(self, device: torch.device | str) -> SequenceBatch:
        """Every tensor on ``device`` (batches are built on the CPU; a GPU model trains on its own)."""
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def trimmed(self) -> SequenceBatch:
        """Drop trailing columns that are padding in every row (micro-batches of short sequences)."""
        length = max(int(self.attention_mask_BL.sum(-1).max()), 2)
        return SequenceBatch(
            input_ids_BL=self.input_ids_BL[:, :length],
            attention_mask_BL=self.attention_mask_BL[:, :length],
            loss_mask_BT=self.loss_mask_BT[:, : length - 1],
            advantages_B=self.advantages_B,
            old_logprobs_BT=self.old_logprobs_BT[:, : length - 1],
            ref_logprobs_BT=self.ref_logprobs_BT[:, : length - 1],
        )

    @property
    def num_tokens(self) -> int:
        return int(self.loss_mask_BT.sum())


def build_sequence_batch(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    response_loss_masks: Sequence[Sequence[int]],
    pad_id: int,
    advantages: Sequence[float] | None = None,
    old_logprobs: Sequence[Sequence[float]] | None = None,
) -> SequenceBatch:
    """Join each prompt with its response; ``old_logprobs`` are per response token when given."""
    batch = len(prompt_ids)
    length = max(len(p) + len(r) for p, r in zip(prompt_ids, response_ids))
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, length), dtype=torch.long)
    loss_mask = torch.zeros((batch, length - 1), dtype=torch.float32)
    old = torch.zeros((batch, length - 1), dtype=torch.float32)
    for row, (prompt, response, mask) in enumerate(zip(prompt_ids, response_ids, response_loss_masks)):
        n_prompt, n_resp = len(prompt), len(response)
        # Target t predicts token t + 1: with no prompt token the first response token has no target.
        if n_prompt == 0:
            raise ValueError(f"sequence {row}: empty prompt; every sequence needs at least one prompt token")
        if len(mask) != n_resp:
            raise ValueError(f"sequence {row}: {n_resp} response tokens but {len(mask)} loss-mask entries")
        input_ids[row, : n_prompt + n_resp] = torch.tensor(list(prompt) + list(response), dtype=torch.long)
        attention[row, : n_prompt + n_resp] = 1
        # Target index t predicts token t + 1: response token j sits at target n_prompt - 1 + j.
        loss_mask[row, n_prompt - 1 : n_prompt - 1 + n_resp] = torch.tensor(list(mask), dtype=torch.float32)
        if old_logprobs is not None:
            old[row, n_prompt - 1 : n_prompt - 1 + n_resp] = torch.tensor(list(old_logprobs[row]), dtype=torch.float32)
    adv = torch.tensor(list(advantages), dtype=torch.float32) if advantages is not None else torch.zeros(batch)
    return SequenceBatch(input_ids, attention, loss_mask, adv, old, torch.zeros_like(old))


def split_batch(batch: SequenceBatch, size: int) -> list[SequenceBatch]:
    """Consecutive chunks of at most ``size`` sequences."""
    return [batch.select(slice(start, start + size)) for start in range(0, len(batch), size)]


def padding_batch() -> SequenceBatch:
    """One zero-weight row (two tokens, loss mask 0): a micro-batch that trains nothing.

    A rank whose share of a mini-batch has fewer micro-batches than another rank's runs
    these, so every rank makes the same forward/backward passes and DDP's all-reduces
    pair up (ranks whose filters dropped rows must not hang the others).
    """
    return SequenceBatch(
        input_ids_BL=torch.zeros((1, 2), dtype=torch.long),
        attention_mask_BL=torch.ones((1, 2), dtype=torch.long),
        loss_mask_BT=torch.zeros((1, 1)),
        advantages_B=torch.zeros(1),
        old_logprobs_BT=torch.zeros((1, 1)),
        ref_logprobs_BT=torch.zeros((1, 1)),
    )
