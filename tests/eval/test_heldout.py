"""Held-out evaluation during RL: accuracy on the run's held-out problems, and how many they were."""

from __future__ import annotations

from slowthink.data.problem_sets import ProblemSet
from slowthink.data.problems import Problem
from slowthink.eval.heldout import evaluate_heldout
from slowthink.rewards.checkers import make_checker
from slowthink.rollout.generator import Completion


class Answers:
    """A generator that answers each prompt with a fixed text (the model is not under test)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, prompt_ids, params, on_finished=None):
        return [Completion(i, [1, 2, 3], [-0.1] * 3, text, "stop") for i, text in enumerate(self.texts)]


def test_heldout_metrics_say_how_many_problems_they_are_on():
    problems = [Problem(id=str(i), problem=f"{i}+1", answer=str(i + 1)) for i in range(4)]
    texts = ["\\boxed{1}", "\\boxed{2}", "\\boxed{9}", "\\boxed{4}"]
    checker = make_checker("exact", workers=1)
    try:
        metrics = evaluate_heldout(Answers(texts), ProblemSet(problems, [[1]] * 4), checker, max_new_tokens=8)
    finally:
        checker.close()
    # Three right of four; the count gives the binomial error sqrt(p (1 - p) / n) its n.
    assert metrics["accuracy"] == 0.75 and metrics["num_problems"] == 4.0
