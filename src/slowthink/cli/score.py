"""The ``slowthink score`` command: options -> ``ScoreConfig`` -> ``recipes.score.run_score``.

Must not import torch, transformers or a recipe at module level: the recipe and the checker
are imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("out"),
    flag("format"),
    flag("fields.answer", "--answer-field"),
    flag("fields.response", "--response-field"),
    flag("fields.responses", "--responses-field"),
    flag("fields.id", "--id-field"),
    flag("fields.golds", "--golds"),
    flag("pass_k"),
    flag("checker.kind", "--checker"),
    # --fallback, the flag there always was, sets eval's name for it.
    flag("checker.answer_fallback", "--fallback"),
    flag("checker.workers"),
    flag("checker.timeout"),
)
def score_command(
    args: list[str] | None = typer.Argument(
        None,
        help="FILE (JSONL rows with a gold answer and a response or a list of responses; or lighteval .parquet details, "
        "lm-eval samples_*.jsonl, an OpenAI batch output), then key=value overrides.",
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML config (keys: slowthink config score)."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Check saved responses against golds; write them back with 'correct' and 'status'.

    Each flag sets the key named in its help (key ...); the golds file's own columns
    (fields.golds_id, fields.golds_answer) are set in the YAML file or as key=value.
    """
    from slowthink.cli.command_config import print_config
    from slowthink.config import ConfigError
    from slowthink.config.load import load_config, split_config_argument, split_overrides
    from slowthink.recipes.score import ScoreConfig, run_score

    files, overrides = split_overrides(args)
    if len(files) > 1:
        raise ConfigError(f"score takes one input file, got {len(files)}: {' '.join(files)}")
    flags = {"file": files[0] if files else None, **(flags or {})}
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(ScoreConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    summary = run_score(cfg, progress=sys.stderr.isatty())
    if summary.rows == summary.bad_rows:
        # Every row an error (or none at all): not a score of 0, a file to look at.
        why = f"; the first: {summary.first_error}" if summary.first_error else ""
        typer.echo(f"error: no row of {cfg.file} could be scored ({summary.rows} rows read, {summary.bad_rows} unreadable{why})", err=True)
        raise typer.Exit(1)
