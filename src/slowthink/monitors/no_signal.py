"""A run with no learning signal: every advantage 0 in its first steps.

GRPO's advantage is a difference within a group (section 3.1). When every rollout of a group
gets the same reward, the group's advantages are all 0 (and with ``drop_uniform_groups`` the
group is dropped); when that holds for every group of a step, the policy learns nothing from
it. A random model (``model.path=tiny``) rewarded on correctness alone is in exactly this
state, since it almost never answers right, and the run would otherwise go on at reward 0 and
say nothing. A wrong answer alone is not this state: a format or length reward still tells
the rollouts of a group apart, and the policy learns from it. So the watch reads the step's
mean absolute advantage (``advantage_abs_mean``, exactly 0 when every group is uniform: the
estimators zero such groups) and prints one warning line, once, after ``WARN_AFTER_STEPS``
such steps from step 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# Fresh-run steps with every advantage 0 before the warning (a few, so a slow start of a
# trained model does not trigger it, yet early enough to save a long run).
WARN_AFTER_STEPS = 5
ADVANTAGE_KEY = "advantage_abs_mean"  # mean |advantage| over the step's rollouts (training/experience.py)
ACCURACY_KEY = "accuracy"  # train accuracy over the step's rollouts (monitors.metrics.rollout_metrics)


def no_signal_message(steps: int, model_path: str, any_correct: bool = False) -> str:
    """The one-line warning (pure, for tests and for the log). ``any_correct``: some rollout
    was right in those steps (then every group was all right or all wrong)."""
    if any_correct:
        return (
            f"[rl] WARNING: every advantage was 0 in the first {steps} steps: the rollouts of each group all got "
            "the same reward, so the policy does not learn. Use problems of mixed difficulty for this model, "
            "more rollouts per prompt (rollout.rollouts_per_prompt), or a graded reward (reward.weights)"
        )
    return (
        f"[rl] WARNING: no rollout was correct in the first {steps} steps, so every advantage is 0 and the "
        f"policy does not learn; model.path={model_path} may be an untrained model. Start from a trained one, "
        "e.g. the demo's SFT checkpoint: model.path=runs/demo/seed0/sft/checkpoints/step_000800 (README, Quick start)"
    )


@dataclass
class NoSignalWatch:
    """Feed each step's metrics; warns once if the first ``steps`` steps had every advantage 0."""

    model_path: str
    steps: int = WARN_AFTER_STEPS
    echo: bool = True
    zero_steps: int = 0
    any_correct: bool = False
    done: bool = False  # warned, saw a non-zero advantage, or resumed mid-run

    @classmethod
    def for_run(cls, start_step: int, model_path: str, echo: bool = True) -> NoSignalWatch:
        """Watch a fresh run only: a resumed run's first steps are already behind it."""
        return cls(model_path=model_path, echo=echo, done=start_step > 0)

    def update(self, metrics: dict) -> bool:
        """True when this step triggered the warning."""
        if self.done:
            return False
        advantage = metrics.get(ADVANTAGE_KEY)
        if advantage is None or advantage > 0:
            self.done = True  # some group's rollouts differ in reward: there is a signal
            return False
        self.any_correct = self.any_correct or (metrics.get(ACCURACY_KEY) or 0.0) > 0
        self.zero_steps += 1
        if self.zero_steps < self.steps:
            return False
        self.done = True
        if self.echo:
            print(no_signal_message(self.steps, self.model_path, self.any_correct), file=sys.stderr, flush=True)
        return True
