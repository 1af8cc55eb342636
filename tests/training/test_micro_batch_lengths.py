"""Micro-batches group sequences of similar length, so trimming removes the padding compute."""

from __future__ import annotations

import torch

from slowthink.training.batch import build_sequence_batch
from slowthink.training.policy_update import rank_micro_batches


def test_micro_batches_are_cut_from_rows_sorted_by_length():
    # Rows alternate short (3 tokens) and long (40 tokens): in arrival order every pair of
    # rows is 40 wide; sorted, half the micro-batches are 3 wide.
    prompts = [[5, 6]] * 8
    responses = [[7] * (1 if i % 2 == 0 else 38) for i in range(8)]
    batch = build_sequence_batch(prompts, responses, [[1] * len(r) for r in responses], pad_id=0, advantages=[1.0] * 8)
    rows = torch.arange(8)
    micro = rank_micro_batches(batch, rows, torch.tensor([8]), micro_batch_size=2)
    widths = sorted(m.trimmed().input_ids_BL.shape[1] for m in micro)
    assert widths == [3, 3, 40, 40]
    # Every row is still trained exactly once.
    seen = sorted(int(m.attention_mask_BL.sum(-1)[i]) for m in micro for i in range(len(m.advantages_B)))
    assert seen == [3] * 4 + [40] * 4
