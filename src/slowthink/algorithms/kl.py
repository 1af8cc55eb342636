"""Per-token KL estimators between the policy and the reference, and token entropy.

The KL penalty keeps the policy near the reference model (section 3.1.1, "Coefficient of
KL Penalty"; section 4.3 resets the reference periodically). With sampled tokens only,
KL(pi || pi_ref) is estimated per token from the two log-probabilities of the token that
was sampled from pi, using Schulman's estimators ("Approximating KL Divergence", 2020):

    r = pi_ref(x) / pi(x),  log r = ref_logprobs - logprobs
    k1 = -log r                  unbiased, high variance, can be negative
    k2 = (log r)^2 / 2           biased, low variance, >= 0
    k3 = (r - 1) - log r         unbiased, low variance, >= 0 (verl's "low_var_kl")

Those are properties of the *values* (the KL-in-reward penalty and the monitor). In the
loss what matters is the *gradient* through log pi, with x still sampled from pi (the
sampling is not differentiated), and there the three differ (take the expectation of
each estimator's gradient under pi):

    k1: E_pi[grad log pi] = 0         zero expected gradient: a k1 loss term does nothing
                                      but add noise, so kl.placement=loss rejects k1
    k2: E_pi[log(pi/pi_ref) grad log pi] = grad KL(pi || pi_ref)    the reverse KL
    k3: E_pi[(1 - pi_ref/pi) grad log pi] = -E_pi_ref[grad log pi] = grad KL(pi_ref || pi)
                                      the *forward* KL, although k3's value estimates
                                      KL(pi || pi_ref)
"""

from __future__ import annotations

import torch
from torch import Tensor

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(
    logprobs_BT: Tensor,
    ref_logprobs_BT: Tensor,
    kind: str,
    log_ratio_clamp: float | None = 20.0,
) -> Tensor:
    """(B, T) per-token estimate of KL(pi || pi_ref); mask and aggregate it yourself.

    ``log_ratio_clamp`` bounds ``logprobs - ref_logprobs`` to ``[-c, c]`` before the
    estimator (k3 holds ``exp(ref - logp)``, which overflows once a token the reference
    finds likely becomes very unlikely under the policy). Outside the band the gradient is
    0. ``None`` turns the clamp off.
    """
    if logprobs_BT.shape != ref_logprobs_BT.shape:
        raise ValueError(f"logprobs_BT {tuple(logprobs_BT.shape)} and ref_logprobs_BT {tuple(ref_logprobs_BT.shape)} must have the same shape")
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; allowed: {', '.join(map(repr, KL_ESTIMATORS))}")
    log_ratio_BT = logprobs_BT - ref_logprobs_BT  # log pi/pi_ref = -log r
    if log_ratio_clamp is not None:
        log_ratio_BT = log_ratio_BT.clamp(min=-log_ratio_clamp, max=log_ratio_clamp)
    if kind == "k1":
        return log_ratio_BT
    if kind == "k2":
        return 0.5 * log_ratio_BT.square()
    # k3: exp(ref - logp) - (ref - logp) - 1, written with log_ratio = logp - ref.
    return torch.exp(-log_ratio_BT) + log_ratio_BT - 1.0


def entropy_from_logits(logits_BTV: Tensor) -> Tensor:
    """(B, T) entropy of the softmax over the last dimension (the vocabulary).

    H = logsumexp(z) - sum_v p_v z_v, which never takes the log of a probability that
    underflowed to 0. Logits of -inf (a masked vocabulary entry) have p = 0 and
    contribute 0; they are zeroed before the product so that neither the value nor the
    gradient becomes NaN (0 * -inf). Computed in the logits' dtype: pass float32 logits
    when the entropy is a loss term.
    """
    probs_BTV = torch.softmax(logits_BTV, dim=-1)
    finite_logits_BTV = torch.where(torch.isfinite(logits_BTV), logits_BTV, torch.zeros_like(logits_BTV))
    return torch.logsumexp(logits_BTV, dim=-1) - (probs_BTV * finite_logits_BTV).sum(dim=-1)
