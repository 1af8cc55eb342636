"""Train and held-out problems for a recipe, from the tiny task or data files, with prompt ids.

Holds the problem source config (``ProblemSourceConfig``, ``TinyTaskConfig``: the ``data``
section of an RL config) beside the code that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from slowthink.config import StrictConfig
from slowthink.data.problems import Problem, check_column_mapping
from slowthink.data.prompts import TEMPLATE_NAMES, encode_prompt
from slowthink.data.table_problems import load_problems
from slowthink.data.tiny_task import ArithmeticTask


class TinyTaskConfig(StrictConfig):
    """The synthetic arithmetic task (slowthink.data.tiny_task.ArithmeticTask)."""

    num_operands: int = 3
    """Operands per arithmetic problem."""
    digits: int = 3
    """Digits per operand."""
    think_share: float = 0.3
    """Cold-start mix: share of the first operand's range where demonstrations mostly think
    (with probability think_high; think_low elsewhere)."""
    think_high: float = 0.8
    """Probability that a demonstration thinks, inside the think_share range."""
    think_low: float = 0.2
    """Probability that a demonstration thinks, outside that range."""
    verify_probability: float = Field(0.0, ge=0.0, le=1.0)
    """Share of thinking cold-start demonstrations that end with a verification step opened by
    "wait" (a reflection keyword, section 3.2); 0 keeps the demo's demonstrations."""


class ProblemSourceConfig(StrictConfig):
    """Where problems come from: the synthetic tiny task, or data files, dataset folders or Hub datasets."""

    source: Literal["tiny", "dataset", "jsonl"] = "tiny"
    """tiny: the synthetic arithmetic task; dataset (or its older name jsonl): problem rows from train_file /
    eval_file (docs/data.md)."""
    train_file: str | None = None
    """Training problems (data.source=dataset): a .jsonl/.json/.parquet/.arrow/.csv file, a dataset folder
    (save_to_disk; DIR@SPLIT) or a Hub id OWNER/NAME[:CONFIG][@SPLIT]."""
    eval_file: str | None = None
    """Held-out problems, named as train_file; null: no held-out evaluation."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Which columns hold a problem's fields, for train_file and eval_file, e.g. {problem: question,
    answer: final_answer, id: uid}; unmapped fields use their own names. Other columns reach reward functions."""
    tiny: TinyTaskConfig = TinyTaskConfig()
    tiny_train_size: int = 4000
    """Problems drawn from the tiny task for training and for held-out evaluation."""
    tiny_eval_size: int = 200
    """Held-out problems drawn from the tiny task (disjoint from training)."""
    template: str = "chat"
    """Prompt template: r1_zero / long (section 3.1.2), chat (Table 6), boxed_chat, tool, plain."""

    @model_validator(mode="after")
    def _check(self) -> ProblemSourceConfig:
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.source != "tiny" and not self.train_file:
            raise ValueError(f"data.source={self.source} needs data.train_file")
        return self

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        return check_column_mapping(columns)


class EncodedPrompts(Sequence[list[int]]):
    """Prompt ids of ``problems[i]``, encoded when asked for (a large pool is never encoded whole)."""

    def __init__(self, problems: Sequence[Problem], template: str, tokenizer: Any):
        self.problems, self.template, self.tokenizer = problems, template, tokenizer

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return encode_prompt(self.template, self.problems[index].problem, self.tokenizer)


@dataclass
class ProblemSet:
    """Problems and their prompt ids; a data file's may be lazy sequences, a ``subset`` is lists."""

    problems: Sequence[Problem]
    prompt_ids: Sequence[list[int]]

    @property
    def golds(self) -> list[str]:
        return [p.answer for p in self.problems]

    def subset(self, indices: list[int]) -> ProblemSet:
        return ProblemSet([self.problems[i] for i in indices], [self.prompt_ids[i] for i in indices])


# Pools up to this size are encoded once at the start; larger ones prompt by prompt, as sampled.
EAGER_ENCODE_MAX = 100_000


def tiny_task(config: ProblemSourceConfig) -> ArithmeticTask:
    return ArithmeticTask(**config.tiny.model_dump())


def load_problem_sets(config: ProblemSourceConfig, tokenizer: Any, seed: int) -> tuple[ProblemSet, ProblemSet]:
    """(train, held-out). The tiny task's split is fixed by a hash, independent of ``seed``."""
    if config.source == "tiny":
        task = tiny_task(config)
        train = task.problems(config.tiny_train_size, seed=seed, heldout=False)
        heldout = task.problems(config.tiny_eval_size, seed=1_000_003, heldout=True)
    else:
        train = load_problems(config.train_file, config.columns)
        heldout = load_problems(config.eval_file, config.columns) if config.eval_file else []

    def encode(problems: Sequence[Problem]) -> ProblemSet:
        if isinstance(problems, list) and len(problems) <= EAGER_ENCODE_MAX:
            return ProblemSet(problems, [encode_prompt(config.template, p.problem, tokenizer) for p in problems])
        return ProblemSet(problems, EncodedPrompts(problems, config.template, tokenizer))

    return encode(train), encode(heldout)
