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

from collections.abc import Sequence

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


def uniforms(keys_B: torch.Tensor, steps: int) -> torch.Tensor:
    """Uniform numbers in [0, 1), one per row and decode step (float32, (B, steps), 24 random bits).

    Element [r, t] depends only on (keys_B[r], t): the table for a whole batch is made once.
    """
    # Key and step go through different hashes before meeting, so no (row, step) pair cancels
    # out (keys and step codes made by one hash collide: hash(j) ^ hash(j) = 0).
    step_codes = hash32(torch.arange(steps, dtype=torch.int64) + 0x2545F491)
    mixed = hash32(hash32(keys_B ^ 0x68E31DA4)[:, None] ^ step_codes[None, :])
    return (mixed >> 8).float() / 2**24


def sample_from_uniforms(logits_BV: torch.Tensor, temperature: float, top_p: float, uniforms_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row by inverse CDF; return (tokens (B,), log-probs (B,)).

    The same contract as ``hf.sample_next_token``: ``temperature == 0`` is greedy (log-probs
    at T = 1); the log-prob is of the tempered distribution before top-p truncation.
    """
    logits_BV = logits_BV.float()
    if temperature == 0:
        tokens_B = logits_BV.argmax(dim=-1)
        return tokens_B, torch.log_softmax(logits_BV, dim=-1).gather(-1, tokens_B[:, None]).squeeze(-1)
    probs_BV = torch.softmax(logits_BV if temperature == 1.0 else logits_BV / temperature, dim=-1)
    kept_BV = probs_BV
    if top_p < 1.0:
        sorted_probs, order = probs_BV.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p (the top token always stays).
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        kept_BV = torch.zeros_like(probs_BV).scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    cdf_BV = kept_BV.cumsum(dim=-1)
    total_B = cdf_BV[:, -1]
    # Strictly below the total mass, so the first bucket edge above the target is a kept token
    # (a dropped token's edge equals its predecessor's and is never the first one above).
    target_B = torch.minimum(uniforms_B.to(cdf_BV.device, cdf_BV.dtype) * total_B, torch.nextafter(total_B, torch.zeros_like(total_B)))
    tokens_B = torch.searchsorted(cdf_BV, target_B[:, None], right=True).squeeze(-1)
    return tokens_B, probs_BV.gather(-1, tokens_B[:, None]).squeeze(-1).log()
