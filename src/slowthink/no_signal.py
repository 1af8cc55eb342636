"""A run with no learning signal: no rollout correct in its first steps.

Must not import torch, transformers, recipes or the CLI (tests/test_layers.py).

GRPO's advantage is a difference within a group (section 3.1). When every rollout of every
group is wrong, the correctness reward is equal everywhere, every advantage is 0 (and with
``drop_uniform_groups`` every group is dropped): the policy cannot learn. A random model
(``model.path=tiny``) is in exactly this state, since it almost never answers right, and the
run would otherwise go on with reward 0 at every step and say nothing. ``NoSignalWatch``
prints one warning line, once, after ``WARN_AFTER_STEPS`` such steps from step 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# Fresh-run steps with no correct rollout before the warning (a few, so a slow start of a
# trained model does not trigger it, yet early enough to save a long run).
WARN_AFTER_STEPS = 5
ACCURACY_KEY = "accuracy"  # train accuracy over the step's rollouts (metrics.rollout_metrics)


def no_signal_message(steps: int, model_path: str) -> str:
    """The one-line warning (pure, for tests and for the log)."""
    return (
        f"[rl] WARNING: no rollout was correct in the first {steps} steps, so every advantage is 0 and the "
        f"policy does not learn; model.path={model_path} may be an untrained model. Start from a trained one, "
        "e.g. the demo's SFT checkpoint: model.path=runs/demo/seed0/sft/checkpoints/step_000800 (README, Quick start)"
    )


@dataclass
class NoSignalWatch:
    """Feed each step's metrics; warns once if the first ``steps`` steps had accuracy 0."""

    model_path: str
    steps: int = WARN_AFTER_STEPS
    echo: bool = True
    zero_steps: int = 0
    done: bool = False  # warned, saw a correct rollout, or resumed mid-run

    @classmethod
    def for_run(cls, start_step: int, model_path: str, echo: bool = True) -> NoSignalWatch:
        """Watch a fresh run only: a resumed run's first steps are already behind it."""
        return cls(model_path=model_path, echo=echo, done=start_step > 0)

    def update(self, metrics: dict) -> bool:
        """True when this step triggered the warning."""
        if self.done:
            return False
        accuracy = metrics.get(ACCURACY_KEY)
        if accuracy is None or accuracy > 0:
            self.done = True  # a correct rollout: there is a signal
            return False
        self.zero_steps += 1
        if self.zero_steps < self.steps:
            return False
        self.done = True
        if self.echo:
            print(no_signal_message(self.steps, self.model_path), file=sys.stderr, flush=True)
        return True
