"""``CurateConfig``: everything ``slowthink curate`` needs, as one typed config.

Read from an optional YAML file (``--config``), the command's flags and ``key=value``
overrides (slowthink/config/load.py). The filter thresholds are ``CurateSettings``
(curate/pipeline.py), the optional pass-rate filter is ``DifficultyConfig``.

Must not import torch, transformers or the curation filters' heavy dependencies
(datasketch, math-verify): the command loads those when it runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slowthink.config import StrictConfig
from slowthink.curate.pipeline import CurateSettings


class DifficultyConfig(StrictConfig):
    """The pass-rate filter (paper section 2): rows the model always or never solves are dropped."""

    model: str | None = None
    """Model (path or 'tiny') whose pass rate drops always/never solved rows; null: the filter is off."""
    samples: int = Field(8, ge=1)
    """Samples per problem (k)."""
    max_new_tokens: int = Field(1024, ge=1)
    """Tokens per sample."""
    template: str = "chat"
    """Prompt template (slowthink.data.prompts)."""
    checker: Literal["math", "exact"] = "math"
    """math (math-verify) or exact (string match)."""


class CurateConfig(StrictConfig):
    """Everything ``slowthink curate`` needs."""

    sources: list[str] = Field(min_length=1)
    """JSONL files of {problem, answer} rows, or hf:NAME[:SPLIT] (needs 'datasets')."""
    out: str
    """The pool: one JSONL file (written atomically when done)."""
    report: str | None = None
    """Markdown report (null: OUT with .md)."""
    benchmarks: list[str] = []
    """Benchmark JSONL files to decontaminate against."""
    filters: CurateSettings = CurateSettings()
    """Thresholds of the filters (docs/curation.md)."""
    difficulty: DifficultyConfig = DifficultyConfig()
    """The optional pass-rate filter."""
