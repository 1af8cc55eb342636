"""Batched sampling with one reproducible random stream per row, as tensor operations.

The generic path (``rollout/hf.py``) draws from ``torch.Generator`` objects; one generator
per completion (``SamplingParams.seeds``) costs a Python call per row and per token. Here a
row's randomness is a counter-based hash of (row key, step): a uniform number per row and
step with no state, so a completion's draw never depends on which rows share its batch,
on compaction (finished rows dropped) or on the batch size, and a whole batch is sampled
in a handful of vectorised ops. The draw is inverse-CDF sampling from the tempered (and
top-p truncated) distribution: the same distribution as ``torch.multinomial``, a
different random stream.
"""

from __future__ import annotations

from typing import Sequence

import torch

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2**32 for int64 x in [0, 2**32), exact without int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _M32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """The "lowbias32" integer hash (C. Wellons), elementwise on int64 values in [0, 2**32)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(num_rows: int, seed: int | None, seeds: Sequence[int] | None) -> torch.Tensor:
    """One 32-bit stream key per row (int64, (B,)).

    ``seeds``: one seed per row (a completion's own stream). Otherwise row ``j`` of a batch
    seeded ``seed`` gets key hash(hash(seed) + j); with no seed the base comes from torch's
    global generator, so ``torch.manual_seed`` still makes runs repeatable.
    """
    if seeds is not None:
        seed_t = torch.tensor([int(s) for s in seeds], dtype=torch.int64)
        return hash32(hash32(seed_t & _M32) ^ ((seed_t >> 32) & _M32))
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
    base = hash32(hash32(torch.tensor([seed & _M32], dtype=torch.int64)) ^ ((seed >> 32) & _M32))
    return hash32(base + torch.arange(num_rows, dtype=torch.int64))


def uniforms(keys_B: torch.Tensor, step: int) -> torch.Tensor:
    """A uniform number in [0, 1) per row for decode step ``step`` (float64, (B,), 48 random bits)."""
    mixed = hash32(keys_B ^ hash32(torch.tensor(2 * step + 1, dtype=torch.int64)))
    high, low = hash32(mixed + 0x9E3779B9) >> 8, mixed >> 8  # 24 bits each
    return (high * 2**24 + low).double() / 2**48


def sample_from_uniforms(
    logits_BV: torch.Tensor, temperature: float, top_p: float, uniforms_B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row by inverse CDF; return (tokens (B,), log-probs (B,)).

    The same contract as ``hf.sample_next_token``: ``temperature == 0`` is greedy (log-probs
    at T = 1); the log-prob is of the tempered distribution before top-p truncation.
    """
    logits_BV = logits_BV.float()
    if temperature == 0:
        tokens_B = logits_BV.argmax(dim=-1)
        return tokens_B, torch.log_softmax(logits_BV, dim=-1).gather(-1, tokens_B[:, None]).squeeze(-1)
    logprobs_BV = torch.log_softmax(logits_BV / temperature, dim=-1)
    probs_BV = logprobs_BV.exp()
    if top_p < 1.0:
        sorted_probs, order = probs_BV.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p (the top token always stays).
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        probs_BV = torch.zeros_like(probs_BV).scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    # float64 CDF: the last bucket's edge is the total mass, so no draw falls off the end.
    cdf_BV = probs_BV.double().cumsum(dim=-1)
    target_B1 = (uniforms_B.to(cdf_BV.device) * cdf_BV[:, -1]).unsqueeze(-1)
    tokens_B = torch.searchsorted(cdf_BV, target_B1, right=True).squeeze(-1).clamp(max=logits_BV.shape[-1] - 1)
    return tokens_B, logprobs_BV.gather(-1, tokens_B[:, None]).squeeze(-1)
