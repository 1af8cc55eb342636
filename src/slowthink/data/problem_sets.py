"""Train and held-out problems for a recipe, from the tiny task or JSONL files, with prompt ids.

Must not import torch, transformers, rollout, training, recipes or the CLI (tests/test_layers.py).

Holds the problem source config (``ProblemSourceConfig``, ``TinyTaskConfig``: the ``data``
section of an RL config) beside the code that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import model_validator

from slowthink.config import StrictConfig
from slowthink.data.problems import Problem, load_problems
from slowthink.prompts import TEMPLATE_NAMES, encode_prompt
from slowthink.tiny import ArithmeticTask


class TinyTaskConfig(StrictConfig):
    """The synthetic arithmetic task (slowthink.tiny.ArithmeticTask)."""

    # Operands per arithmetic problem.
    num_operands: int = 3
    # Digits per operand.
    digits: int = 3
    # Cold-start mix: share of the first operand's range where demonstrations mostly think
    # (with probability think_high; think_low elsewhere).
    think_share: float = 0.3
    # Probability that a demonstration thinks, inside the think_share range.
    think_high: float = 0.8
    # Probability that a demonstration thinks, outside that range.
    think_low: float = 0.2


class ProblemSourceConfig(StrictConfig):
    """Where problems come from: the synthetic tiny task or JSONL files of Problem rows."""

    # tiny: the synthetic arithmetic task; jsonl: Problem rows ({id, problem, answer}) from train_file /
    # eval_file.
    source: Literal["tiny", "jsonl"] = "tiny"
    # JSONL of training problems (data.source=jsonl).
    train_file: str | None = None
    # JSONL of held-out problems (data.source=jsonl); null: no held-out evaluation.
    eval_file: str | None = None
    tiny: TinyTaskConfig = TinyTaskConfig()
    # Problems drawn from the tiny task for training and for held-out evaluation.
    tiny_train_size: int = 4000
    # Held-out problems drawn from the tiny task (disjoint from training).
    tiny_eval_size: int = 200
    # Prompt template: r1_zero / long (section 3.1.2), chat (Table 6), boxed_chat, tool, plain.
    template: str = "chat"

    @model_validator(mode="after")
    def _check(self) -> ProblemSourceConfig:
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.source == "jsonl" and not self.train_file:
            raise ValueError("data.source=jsonl needs data.train_file")
        return self


@dataclass
class ProblemSet:
    problems: list[Problem]
    prompt_ids: list[list[int]]

    @property
    def golds(self) -> list[str]:
        return [p.answer for p in self.problems]

    def subset(self, indices: list[int]) -> ProblemSet:
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
