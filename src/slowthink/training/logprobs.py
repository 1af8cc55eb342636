"""Per-token log-probs and entropy of a model on a ``SequenceBatch``."""

from __future__ import annotations

from typing import Any

import torch

from slowthink.algorithms.kl import entropy_from_logits


def forward_logprobs(
    model: Any, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprobs_BT, entropy_BT or None) of each next token under softmax(logits / temperature).

    The rollout temperature is applied here too, so that a fully on-policy step sees the
    same distribution the sampler drew from (importance ratio exactly 1).
    """
    logits_BLV = model(input_ids=input_ids_BL, attention_mask=attention_mask_BL, use_cache=False).logits
    logits_BTV = logits_BLV[:, :-1].float()
    if temperature not in (0.0, 1.0):
        logits_BTV = logits_BTV / temperature
    targets_BT = input_ids_BL[:, 1:]
    logprobs_BT = torch.log_softmax(logits_BTV, dim=-1).gather(-1, targets_BT.unsqueeze(-1)).squeeze(-1)
    entropy_BT = entropy_from_logits(logits_BTV) if with_entropy else None
    return logprobs_BT, entropy_BT


@torch.no_grad()
def batched_logprobs(model: Any, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor, temperature: float, micro_batch: int) -> torch.Tensor:
    """No-grad log-probs in micro-batches (old-policy and reference passes)."""
    chunks = []
    for start in range(0, input_ids_BL.shape[0], micro_batch):
        stop = start + micro_batch
        logprobs_BT, _ = forward_logprobs(model, input_ids_BL[start:stop], attention_mask_BL[start:stop], temperature)
        chunks.append(logprobs_BT)
    return torch.cat(chunks)
