"""The RL core's pure math: advantages, KL estimators, policy losses, schedules.

Must not import config, modeling, training, rollout, recipes, rewards, torch.distributed, transformers or the CLI (tests/test_layers.py).

Functions of tensors and numbers only (torch, nothing else): no config objects, no
model, no torch.distributed. Each module answers one question:

- ``advantages``: how are rewards turned into advantages? (GRPO, Dr. GRPO, RLOO, REINFORCE++)
- ``kl``: how far is the policy from the reference? (k1/k2/k3 estimators, entropy)
- ``losses``: what is the loss, and how do per-token losses become one scalar?
- ``schedules``: which KL coefficient, length budget and reference reset at a step?
"""

from slowthink.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    compute_advantages,
    grpo_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    zero_variance_groups,
)
from slowthink.algorithms.kl import KL_ESTIMATORS, entropy_from_logits, kl_estimate
from slowthink.algorithms.losses import (
    LOSS_AGGREGATIONS,
    PolicyLossTerms,
    aggregate_loss,
    clipped_policy_loss,
    masked_mean,
)
from slowthink.algorithms.schedules import (
    KL_COEFFICIENT_MODES,
    cosine_anneal,
    kl_coefficient,
    max_length_at,
    reference_reset_due,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_COEFFICIENT_MODES",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "PolicyLossTerms",
    "aggregate_loss",
    "clipped_policy_loss",
    "compute_advantages",
    "cosine_anneal",
    "entropy_from_logits",
    "grpo_advantages",
    "kl_coefficient",
    "kl_estimate",
    "masked_mean",
    "max_length_at",
    "reference_reset_due",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "zero_variance_groups",
]
