"""The ``slowthink curate`` command: its flags; the work is recipes/curate.py.

Must not import torch, transformers, datasketch or math-verify at module level: the recipe,
the model and the checker are imported when the command runs.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("out"),
    flag("report"),
    flag("benchmarks", "--benchmark"),
    flag("filters.skip"),
    flag("filters.contamination_threshold"),
    flag("filters.ngram"),
    flag("filters.near_duplicate_threshold"),
    flag("filters.problem_key"),
    flag("filters.answer_key"),
    flag("difficulty.model", "--difficulty-model"),
    flag("difficulty.samples"),
    flag("difficulty.max_new_tokens"),
    flag("difficulty.template"),
    flag("difficulty.checker"),
)
def curate_cli(
    args: list[str] = typer.Argument(
        None,
        help="Sources: JSONL files of {problem, answer} rows, or hf:NAME[:SPLIT] (needs "
        "'datasets'); then key=value overrides (keys: slowthink config curate).",
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML config (keys: slowthink config curate)."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Build an RL training pool: question-type, answer, duplicate, contamination and difficulty filters (paper section 2)."""
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument, split_overrides
    from slowthink.curate.config import CurateConfig
    from slowthink.recipes.curate import run_curate

    sources, overrides = split_overrides(args)
    flags = {"sources": sources, **(flags or {})}
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(CurateConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    stats, report_path = run_curate(cfg, "slowthink curate " + " ".join(shlex.quote(a) for a in sys.argv[2:]))
    print(f"kept {stats.kept} of {stats.read} rows -> {cfg.out}; report {report_path}")
