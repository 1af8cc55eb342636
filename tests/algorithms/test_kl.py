"""KL estimators and token entropy against hand-computed values and exact expectations."""

from __future__ import annotations

import math

import pytest
import torch

from slowthink.algorithms.kl import KL_ESTIMATORS, entropy_from_logits, kl_estimate

# Token 0: the policy likes it more than the reference (log pi - log pi_ref = +1);
# token 1: less (-1); token 2: both agree.
LOGPROBS = torch.tensor([[-1.0, -2.0, -0.5]], dtype=torch.float64)
REF_LOGPROBS = torch.tensor([[-2.0, -1.0, -0.5]], dtype=torch.float64)


def test_k1_is_the_signed_log_ratio() -> None:
    expected = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(kl_estimate(LOGPROBS, REF_LOGPROBS, "k1"), expected, rtol=0, atol=0)


def test_k2_is_half_the_squared_log_ratio() -> None:
    expected = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(kl_estimate(LOGPROBS, REF_LOGPROBS, "k2"), expected, rtol=0, atol=0)


def test_k3_by_hand() -> None:
    # exp(ref - logp) - (ref - logp) - 1: exp(-1) + 1 - 1 = 0.36788; exp(1) - 1 - 1 = 0.71828.
    expected = torch.tensor([[math.exp(-1), math.e - 2, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(kl_estimate(LOGPROBS, REF_LOGPROBS, "k3"), expected, rtol=0, atol=1e-15)


def test_k2_and_k3_are_never_negative() -> None:
    generator = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(64, 32, generator=generator, dtype=torch.float64) * 8
    ref_logprobs = -torch.rand(64, 32, generator=generator, dtype=torch.float64) * 8
    assert (kl_estimate(logprobs, ref_logprobs, "k3") >= 0).all()
    assert (kl_estimate(logprobs, ref_logprobs, "k2") >= 0).all()
    assert (kl_estimate(logprobs, ref_logprobs, "k1") < 0).any()


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_unbiased_estimators_average_to_the_exact_kl(kind: str) -> None:
    # Over a 4-token vocabulary, the expectation under pi of k1 and k3 is KL(pi || pi_ref):
    # weight each token's estimate by pi(token) and compare with the closed form.
    pi = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    pi_ref = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    exact_kl = float((pi * (pi.log() - pi_ref.log())).sum())  # 0.45650...
    estimates = kl_estimate(pi.log().unsqueeze(0), pi_ref.log().unsqueeze(0), kind)
    assert float((pi * estimates[0]).sum()) == pytest.approx(exact_kl, abs=1e-12)


def test_log_ratio_clamp_bounds_the_estimate_and_can_be_turned_off() -> None:
    logprobs = torch.tensor([[0.0, -100.0]], dtype=torch.float64)
    ref_logprobs = torch.tensor([[-100.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(kl_estimate(logprobs, ref_logprobs, "k1"), torch.tensor([[20.0, -20.0]], dtype=torch.float64))
    # k3 at log-ratio -20: exp(20) - 20 - 1, finite.
    k3 = kl_estimate(logprobs, ref_logprobs, "k3")
    assert k3[0, 1].item() == pytest.approx(math.exp(20) - 21)
    unclamped = kl_estimate(logprobs, ref_logprobs, "k1", log_ratio_clamp=None)
    torch.testing.assert_close(unclamped, torch.tensor([[100.0, -100.0]], dtype=torch.float64))


def test_unknown_kind_and_shape_mismatch_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown KL estimator 'kl'.*'k1', 'k2', 'k3'"):
        kl_estimate(LOGPROBS, REF_LOGPROBS, "kl")
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(1, 2\)"):
        kl_estimate(LOGPROBS, REF_LOGPROBS[:, :2], "k1")
    assert KL_ESTIMATORS == ("k1", "k2", "k3")


def test_entropy_of_uniform_is_log_vocab() -> None:
    logits = torch.full((2, 3, 7), 1.5, dtype=torch.float64)
    torch.testing.assert_close(entropy_from_logits(logits), torch.full((2, 3), math.log(7), dtype=torch.float64))


def test_entropy_by_hand_and_for_extreme_logits() -> None:
    # logits [0, ln 3] -> p = [1/4, 3/4]; H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.5623351.
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    logits = torch.tensor([[[0.0, math.log(3.0)], [1000.0, 0.0]]], dtype=torch.float64)
    entropy = entropy_from_logits(logits)
    assert entropy[0, 0].item() == pytest.approx(expected, abs=1e-12)
    # A near-one-hot distribution: e^-1000 underflows, the entropy is 0, not NaN.
    assert entropy[0, 1].item() == 0.0


def test_entropy_ignores_masked_vocabulary_entries_in_value_and_gradient() -> None:
    logits = torch.tensor([[[0.0, 0.0, float("-inf")]]], requires_grad=True)
    entropy = entropy_from_logits(logits)
    assert entropy.item() == pytest.approx(math.log(2))
    entropy.sum().backward()
    assert torch.isfinite(logits.grad).all()
