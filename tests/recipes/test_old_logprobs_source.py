"""The old-log-probs choice is made in one place (recipes/rl.py old_logprobs_source)."""

from __future__ import annotations

import pytest

from slowthink.config import load_config
from slowthink.recipes.rl import loss_settings, old_logprobs_source
from slowthink.recipes.rl_config import RLConfig


@pytest.mark.parametrize(
    ("overrides", "source"),
    [
        ([], "current"),  # one on-policy update: the current log-probs, detached (ratio 1)
        (["update.epochs=2"], "recompute"),  # two passes: the trainer's log-probs before the update
        (["rollout.prompts_per_step=4", "update.prompts_per_update=2"], "recompute"),  # mini-batches
        (["algorithm.old_logprobs=rollout"], "rollout"),
        (["rollout.sync_weights_every=2", "algorithm.old_logprobs=rollout"], "rollout"),  # stale rollouts
    ],
)
def test_old_logprobs_source(overrides, source):
    config = load_config(RLConfig, None, overrides)
    assert old_logprobs_source(config) == source
    # The loss detaches the current log-probs exactly when that is the choice.
    assert loss_settings(config, 0.0, has_reference=False).old_is_current == (source == "current")
