"""Clipped policy loss and loss aggregation: hand values, on-policy gradient, micro-batching."""

from __future__ import annotations

import math

import pytest
import torch

from slowthink.algorithms.kl import kl_estimate
from slowthink.algorithms.losses import (
    LOSS_AGGREGATIONS,
    aggregate_loss,
    clipped_policy_loss,
    masked_mean,
)

CLIP_LOW, CLIP_HIGH = 0.2, 0.28  # band [0.8, 1.28] (DAPO's clip-higher)
RATIOS = [0.5, 0.75, 0.85, 1.0, 1.25, 1.5]


def _loss_at_ratios(advantage: float) -> tuple[torch.Tensor, object]:
    """Policy-loss terms for one sequence whose tokens have the ratios in RATIOS."""
    old_logprobs = torch.full((1, len(RATIOS)), -2.0, dtype=torch.float64)
    logprobs = (old_logprobs + torch.tensor([RATIOS], dtype=torch.float64).log()).requires_grad_(True)
    terms = clipped_policy_loss(logprobs, old_logprobs, torch.tensor([advantage], dtype=torch.float64), CLIP_LOW, CLIP_HIGH)
    terms.loss_BT.sum().backward()
    return logprobs.grad, terms


def test_clip_band_positive_advantage() -> None:
    # A = +1: loss = -min(r, clip(r, 0.8, 1.28)). Only r = 1.5 leaves the band upwards and
    # is capped at -1.28 with no gradient; r = 1.25 would be clipped by a symmetric 0.2.
    # Ratios below the band keep their (unclipped, pessimistic) loss -r and gradient -r.
    grad, terms = _loss_at_ratios(+1.0)
    expected_loss = torch.tensor([[-0.5, -0.75, -0.85, -1.0, -1.25, -1.28]], dtype=torch.float64)
    torch.testing.assert_close(terms.loss_BT.detach(), expected_loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(terms.ratio_BT.detach(), torch.tensor([RATIOS], dtype=torch.float64), rtol=0, atol=1e-12)
    assert terms.clipped_BT.tolist() == [[False, False, False, False, False, True]]
    # d(-r)/d logprob = -r inside; 0 where clipped.
    torch.testing.assert_close(grad, torch.tensor([[-0.5, -0.75, -0.85, -1.0, -1.25, 0.0]], dtype=torch.float64), rtol=0, atol=1e-12)


def test_clip_band_negative_advantage() -> None:
    # A = -1: loss = max(r, clip(r, 0.8, 1.28)). Ratios below 0.8 are lifted to 0.8 with
    # no gradient (clipped); r = 1.5 keeps loss 1.5 (pessimistic, not clipped).
    grad, terms = _loss_at_ratios(-1.0)
    expected_loss = torch.tensor([[0.8, 0.8, 0.85, 1.0, 1.25, 1.5]], dtype=torch.float64)
    torch.testing.assert_close(terms.loss_BT.detach(), expected_loss, rtol=0, atol=1e-12)
    assert terms.clipped_BT.tolist() == [[True, True, False, False, False, False]]
    torch.testing.assert_close(grad, torch.tensor([[0.0, 0.0, 0.85, 1.0, 1.25, 1.5]], dtype=torch.float64), rtol=0, atol=1e-12)


def test_zero_advantage_gives_zero_loss_and_no_clipping() -> None:
    _, terms = _loss_at_ratios(0.0)
    assert torch.equal(terms.loss_BT.detach().abs(), torch.zeros(1, len(RATIOS), dtype=torch.float64))
    assert not terms.clipped_BT.any()


def test_on_policy_step_is_exactly_the_plain_policy_gradient() -> None:
    generator = torch.Generator().manual_seed(1)
    logprobs = (-torch.rand(4, 5, generator=generator) * 3).requires_grad_(True)
    advantages = torch.tensor([1.5, -0.5, 0.0, -2.0])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    terms = clipped_policy_loss(logprobs, logprobs.detach(), advantages, CLIP_LOW, CLIP_HIGH)
    assert torch.equal(terms.ratio_BT, torch.ones(4, 5))
    assert masked_mean(terms.clipped_BT, mask).item() == 0.0
    aggregate_loss(terms.loss_BT, mask, "token_mean", num_sequences=4, num_tokens=11).backward()
    # The REINFORCE gradient of -sum(A * logprob * mask) / 11 is -A * mask / 11.
    expected = -advantages.unsqueeze(1) * mask / 11
    assert torch.equal(logprobs.grad, expected)


def test_token_level_advantages_and_bad_arguments() -> None:
    logprobs = torch.zeros(2, 3)
    per_token = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.0]])
    terms = clipped_policy_loss(logprobs, logprobs, per_token, CLIP_LOW, CLIP_HIGH)
    torch.testing.assert_close(terms.loss_BT, -per_token)
    with pytest.raises(ValueError, match=r"advantages must have shape \(2,\) or \(2, 3\).*got \(3,\)"):
        clipped_policy_loss(logprobs, logprobs, torch.zeros(3), CLIP_LOW, CLIP_HIGH)
    with pytest.raises(ValueError, match="clip_low=1.0"):
        clipped_policy_loss(logprobs, logprobs, torch.zeros(2), 1.0, CLIP_HIGH)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        clipped_policy_loss(logprobs, logprobs[:, :2], torch.zeros(2), CLIP_LOW, CLIP_HIGH)


# loss [[1, 2, 3], [4, 5, 6]] with mask [[1, 1, 0], [1, 0, 0]]: kept tokens 1, 2 | 4.
LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token_mean", 7 / 3),  # (1 + 2 + 4) / 3 tokens
        ("seq_mean", (3 / 2 + 4 / 1) / 2),  # row means 1.5 and 4, over 2 sequences = 2.75
        ("constant", 7 / (4 * 2)),  # 7 / (max_length 4 * 2 sequences) = 0.875
    ],
)
def test_aggregation_by_hand(mode: str, expected: float) -> None:
    value = aggregate_loss(LOSS, MASK, mode, num_sequences=2, num_tokens=3, max_length=4)
    assert value.item() == pytest.approx(expected, abs=1e-12)


def test_aggregation_divides_by_the_global_counts() -> None:
    # This micro-batch is half of a mini-batch of 4 sequences and 10 tokens.
    assert aggregate_loss(LOSS, MASK, "token_mean", num_sequences=4, num_tokens=10).item() == pytest.approx(0.7)
    assert aggregate_loss(LOSS, MASK, "seq_mean", num_sequences=4, num_tokens=10).item() == pytest.approx(5.5 / 4)
    assert aggregate_loss(LOSS, MASK, "constant", num_sequences=4, num_tokens=10, max_length=4).item() == pytest.approx(7 / 16)


def test_empty_rows_count_as_sequences_and_empty_batches_give_zero() -> None:
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    # Row 0 mean 1.5, row 1 has no token (contributes 0), still 2 sequences: 0.75.
    assert aggregate_loss(LOSS, mask, "seq_mean", num_sequences=2, num_tokens=2).item() == pytest.approx(0.75)
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    assert aggregate_loss(LOSS, nothing, "token_mean", num_sequences=2, num_tokens=0).item() == 0.0


def test_aggregation_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown loss aggregation 'sum'.*'token_mean', 'seq_mean', 'constant'"):
        aggregate_loss(LOSS, MASK, "sum", num_sequences=2, num_tokens=3)
    with pytest.raises(ValueError, match="'constant' needs max_length"):
        aggregate_loss(LOSS, MASK, "constant", num_sequences=2, num_tokens=3)
    with pytest.raises(ValueError, match="num_sequences >= 1"):
        aggregate_loss(LOSS, MASK, "token_mean", num_sequences=0, num_tokens=3)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 2\)"):
        aggregate_loss(LOSS, MASK[:, :2], "token_mean", num_sequences=2, num_tokens=3)
    assert LOSS_AGGREGATIONS == ("token_mean", "seq_mean", "constant")


def test_masked_mean() -> None:
    assert masked_mean(LOSS, MASK).item() == pytest.approx(7 / 3)
    assert masked_mean(LOSS, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        masked_mean(LOSS, MASK[:1])


# Ragged lengths, one empty row, over 8 sequences of up to 6 tokens.
LENGTHS = [6, 1, 3, 0, 5, 2, 4, 6]
MAX_LENGTH = 6


def _micro_batch_objective(theta_BT: torch.Tensor, rows: slice, mode: str, num_tokens: int) -> torch.Tensor:
    """The RL objective (clipped PG + KL) of rows ``rows``, aggregated with global counts."""
    generator = torch.Generator().manual_seed(7)
    old_logprobs = -torch.rand(8, MAX_LENGTH, generator=generator, dtype=torch.float64) * 2
    ref_logprobs = -torch.rand(8, MAX_LENGTH, generator=generator, dtype=torch.float64) * 2
    advantages = torch.randn(8, generator=generator, dtype=torch.float64)
    mask = torch.arange(MAX_LENGTH).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    logprobs = theta_BT[rows]
    terms = clipped_policy_loss(logprobs, old_logprobs[rows], advantages[rows], CLIP_LOW, CLIP_HIGH)
    per_token = terms.loss_BT + 0.1 * kl_estimate(logprobs, ref_logprobs[rows], "k3")
    return aggregate_loss(per_token, mask[rows], mode, num_sequences=8, num_tokens=num_tokens, max_length=MAX_LENGTH)


@pytest.mark.parametrize("mode", LOSS_AGGREGATIONS)
def test_micro_batch_size_never_changes_the_loss_or_the_gradient(mode: str) -> None:
    generator = torch.Generator().manual_seed(3)
    start = -torch.rand(8, MAX_LENGTH, generator=generator, dtype=torch.float64) * 2
    num_tokens = sum(LENGTHS)
    results = {}
    for micro_batch in (8, 4, 2, 1):  # 1x8, 2x4, 4x2, 8x1
        theta = start.clone().requires_grad_(True)
        total = torch.zeros((), dtype=torch.float64)
        for first in range(0, 8, micro_batch):
            loss = _micro_batch_objective(theta, slice(first, first + micro_batch), mode, num_tokens)
            loss.backward()  # gradient accumulation, as the training loop does it
            total += loss.detach()
        results[micro_batch] = (total, theta.grad)
    full_loss, full_grad = results[8]
    assert full_grad.abs().sum() > 0
    for micro_batch in (4, 2, 1):
        loss, grad = results[micro_batch]
        torch.testing.assert_close(loss, full_loss, rtol=0, atol=1e-12)
        torch.testing.assert_close(grad, full_grad, rtol=0, atol=1e-12)


def test_per_micro_batch_token_mean_would_change_the_gradient() -> None:
    # The bug the global counts prevent: normalising each micro-batch by its own token
    # count weighs the 1-token row of a [6, 1] micro-batch like the 3.5 average row.
    generator = torch.Generator().manual_seed(3)
    theta = (-torch.rand(8, MAX_LENGTH, generator=generator, dtype=torch.float64) * 2).requires_grad_(True)
    full = _micro_batch_objective(theta, slice(0, 8), "token_mean", sum(LENGTHS))
    local = sum(_micro_batch_objective(theta, slice(first, first + 2), "token_mean", sum(LENGTHS[first : first + 2])) / 4 for first in range(0, 8, 2))
    assert not math.isclose(full.item(), local.item(), abs_tol=1e-6)
