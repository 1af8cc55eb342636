"""Held-out accuracy during training (greedy by default), with the run's own checker."""

from __future__ import annotations

from slowthink.data.problem_sets import ProblemSet
from slowthink.monitors.metrics import rollout_metrics
from slowthink.rewards.verdict import Checker
from slowthink.rollout.generator import Generator, SamplingParams


def evaluate_heldout(
    generator: Generator,
    problems: ProblemSet,
    checker: Checker,
    max_new_tokens: int,
    temperature: float = 0.0,
    stop: tuple[str, ...] = (),
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy, lengths and completion ratio on the held-out problems (one sample each), and
    ``num_problems``: how many were evaluated, from which a reader gets accuracy's binomial
    error sqrt(p (1 - p) / num_problems) (1.4 points at 70% on 1,000 problems; 3.2 on 200)."""
    if not problems.problems:
        return {}
    params = SamplingParams(temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, stop=stop, n=1, seed=seed)
    completions = generator.generate(problems.prompt_ids, params)
    verdicts = checker.check(problems.golds, [c.text for c in completions])
    metrics = rollout_metrics([c.text for c in completions], [len(c.token_ids) for c in completions], [c.finished for c in completions], verdicts)
    return {**metrics, "num_problems": float(len(completions))}
