"""Sequence packing for SFT: several short examples share one row, none sees another.

Long-CoT cold-start data (section 4.1) mixes responses of a few hundred and many thousand
tokens; padding every row to the longest wastes most of the compute. Packing concatenates
examples into rows of at most ``pack_length`` tokens with correct attention boundaries:

- ``position_ids`` restart at 0 for every packed example (RoPE sees the positions it
  would see alone);
- a (B, 1, L, L) additive mask lets token i attend to token j only when both belong to
  the same example and j <= i (block-diagonal causal). transformers' Qwen2 infers
  boundaries from position_ids only with flash-attention; a 4D mask is honoured as given by
  the eager and SDPA paths, so the boundaries hold on CPU too;
- the loss mask is aligned to targets exactly as unpacked (training/batch.py): target t
  predicts token t+1, and no target crosses from one example into the next (the first
  token of every example is a prompt token, loss 0).

The token-mean loss over a step is therefore the same packed or not (tests/training/
test_packing.py compares them).

Several ranks (``rank_share``): every rank packs the whole step's batch, the same way, and
takes every world-th row, the count evened out with empty rows (loss mask 0). Packing each
rank's own share instead gives the ranks different numbers of rows, hence of
micro-batches, and their collectives stop pairing up (tests/recipes/
test_sft_packing_multirank.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    """R packed rows of length L (T = L - 1 targets)."""

    input_ids_RL: torch.Tensor  # (R, L) token ids, right-padded
    position_ids_RL: torch.Tensor  # (R, L) position within each packed example (0 on padding)
    segment_ids_RL: torch.Tensor  # (R, L) index of the example within its row; -1 on padding
    loss_mask_RT: torch.Tensor  # (R, T) 1 where the target is a trained response token

    def __len__(self) -> int:
        return self.input_ids_RL.shape[0]

    def select(self, rows: slice) -> PackedBatch:
        return PackedBatch(self.input_ids_RL[rows], self.position_ids_RL[rows], self.segment_ids_RL[rows], self.loss_mask_RT[rows])

    def trimmed(self) -> PackedBatch:
        """Drop trailing columns that are padding in every row."""
        length = max(int((self.segment_ids_RL >= 0).sum(-1).max()), 2)
        return PackedBatch(
            self.input_ids_RL[:, :length], self.position_ids_RL[:, :length], self.segment_ids_RL[:, :length], self.loss_mask_RT[:, : length - 1]
        )

    def attention_mask(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(R, 1, L, L) additive mask: 0 where attention is allowed, the dtype's minimum elsewhere."""
        seg_RL = self.segment_ids_RL
        length = seg_RL.shape[1]
        causal_LL = torch.ones(length, length, dtype=torch.bool).tril()
        same_RLL = seg_RL.unsqueeze(2) == seg_RL.unsqueeze(1)
        allowed_RLL = same_RLL & causal_LL & (seg_RL >= 0).unsqueeze(2)
        # A padding position attends to itself only: no row of the softmax is all -inf (NaN).
        allowed_RLL |= torch.eye(length, dtype=torch.bool).unsqueeze(0)
        mask = torch.zeros(allowed_RLL.shape, dtype=dtype)
        mask.masked_fill_(~allowed_RLL, torch.finfo(dtype).min)
        return mask.unsqueeze(1)


def pack_rows(lengths: Sequence[int], pack_length: int) -> list[list[int]]:
    """Example indices per row, first-fit in the given order (the sampler's order is kept)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index, length in enumerate(lengths):
        if length > pack_length:
            raise ValueError(f"example {index} has {length} tokens, more than the pack length {pack_length}: apply data.max_length first")
        for r, free in enumerate(room):
            if length <= free:
                rows[r].append(index)
                room[r] -= length
                break
        else:
            rows.append([index])
            room.append(pack_length - length)
    return rows


def pack_examples(
    prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], loss_masks: Sequence[Sequence[int]], pack_length: int, pad_id: int
) -> PackedBatch:
    """Pack prompt + response examples into rows of at most ``pack_length`` tokens."""
    lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]
    layout = pack_rows(lengths, pack_length)
    width = max(sum(lengths[i] for i in row) for row in layout)
    n_rows = len(layout)
    input_ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    segments = torch.full((n_rows, width), -1, dtype=torch.long)
    loss_mask = torch.zeros((n_rows, width - 1), dtype=torch.float32)
    for r, row in enumerate(layout):
        offset = 0
        for segment, i in enumerate(row):
            n_prompt, n_resp = len(prompt_ids[i]), len(response_ids[i])
            if n_prompt == 0:
                raise ValueError(f"example {i}: empty prompt; every example needs at least one prompt token")
            span = slice(offset, offset + n_prompt + n_resp)
            input_ids[r, span] = torch.tensor(list(prompt_ids[i]) + list(response_ids[i]), dtype=torch.long)
            positions[r, span] = torch.arange(n_prompt + n_resp)
            segments[r, span] = segment
            # Response token j sits at target offset + n_prompt - 1 + j (as in build_sequence_batch).
            start = offset + n_prompt - 1
            loss_mask[r, start : start + n_resp] = torch.tensor(list(loss_masks[i]), dtype=torch.float32)
            offset += n_prompt + n_resp
    return PackedBatch(input_ids, positions, segments, loss_mask)


def rank_share(packed: PackedBatch, rank: int, world_size: int, pad_id: int) -> PackedBatch:
    """Rows ``rank``, ``rank + world_size``, ... of ``packed``, after empty rows make the count
    a multiple of ``world_size``: every rank gets as many rows, so as many micro-batches.

    An empty row is all padding (segment -1, loss mask 0): it adds nothing to the loss or
    the gradient, only a forward and backward pass that pairs up with the other ranks'."""
    missing = -len(packed) % world_size
    if missing:
        width = packed.input_ids_RL.shape[1]
        packed = PackedBatch(
            torch.cat([packed.input_ids_RL, packed.input_ids_RL.new_full((missing, width), pad_id)]),
            torch.cat([packed.position_ids_RL, packed.position_ids_RL.new_zeros((missing, width))]),
            torch.cat([packed.segment_ids_RL, packed.segment_ids_RL.new_full((missing, width), -1)]),
            torch.cat([packed.loss_mask_RT, packed.loss_mask_RT.new_zeros((missing, width - 1))]),
        )
    return packed.select(slice(rank, None, world_size))
