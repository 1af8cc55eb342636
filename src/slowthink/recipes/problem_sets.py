"""Train and held-out problems for a recipe, from the tiny task or JSONL files, with prompt ids.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slowthink.data.problems import Problem, load_problems
from slowthink.prompts import encode_prompt
from slowthink.recipes.common_config import ProblemSourceConfig
from slowthink.tiny import ArithmeticTask


@dataclass
class ProblemSet:
    problems: list[Problem]
    prompt_ids: list[list[int]]

    @property
    def golds(self) -> list[str]:
        return [p.answer for p in self.problems]

    def subset(self, indices: list[int]) -> "ProblemSet":
        return ProblemSet([self.problems[i] for i in indices], [self.prompt_ids[i] for i in indices])


def tiny_task(config: ProblemSourceConfig) -> ArithmeticTask:
    return ArithmeticTask(**config.tiny.model_dump())


def load_problem_sets(config: ProblemSourceConfig, tokenizer: Any, seed: int) -> tuple[ProblemSet, ProblemSet]:
    """(train, held-out). The tiny task's split is fixed by a hash, independent of ``seed``."""
    if config.source == "tiny":
        task = tiny_task(config)
        train = task.problems(config.tiny_train_size, seed=seed, heldout=False)
        heldout = task.problems(config.tiny_eval_size, seed=1_000_003, heldout=True)
    else:
        train = load_problems(config.train_file)
        heldout = load_problems(config.eval_file) if config.eval_file else []

    def encode(problems: list[Problem]) -> ProblemSet:
        return ProblemSet(problems, [encode_prompt(config.template, p.problem, tokenizer) for p in problems])

    return encode(train), encode(heldout)
