"""The ``slowthink score`` command: options -> ``ScoreConfig`` -> ``recipes.score.score_file``.

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
    flag("answer_field"),
    flag("response_field"),
    flag("responses_field"),
    flag("id_field"),
    flag("golds"),
    flag("pass_k"),
    flag("checker"),
    flag("fallback", "--fallback"),
    flag("workers"),
    flag("timeout"),
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
    """Check saved responses against golds; write them back with 'correct' and 'status'."""
    from slowthink.cli.command_config import print_config
    from slowthink.config import ConfigError
    from slowthink.config.load import load_config, split_config_argument, split_overrides
    from slowthink.durable import check_output
    from slowthink.recipes.score import ScoreConfig, print_summary, score_file

    files, overrides = split_overrides(args)
    if len(files) > 1:
        raise ConfigError(f"score takes one input file, got {len(files)}: {' '.join(files)}")
    flags = {"file": files[0] if files else None, **(flags or {})}
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(ScoreConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    file, out = Path(cfg.file), Path(cfg.out)
    if not file.is_file():
        typer.echo(f"error: input file {file} does not exist", err=True)
        raise typer.Exit(2)
    check_output(out, [file, cfg.golds])  # the output over an input would destroy it (durable.py)
    if out.is_dir():
        # The atomic write's temp file used to be named instead of the path given.
        typer.echo(f"error: --out {out} is a directory; give the path of the file to write, e.g. {out / (file.stem + '.scored.jsonl')}", err=True)
        raise typer.Exit(2)
    fields = read_fields(cfg)
    from slowthink.rewards.checkers import make_checker

    chosen = make_checker(cfg.checker, workers=cfg.workers, timeout_s=cfg.timeout, fallback=cfg.fallback)
    try:
        summary = score_file(file, out, chosen, fields, progress=sys.stderr.isatty())
        print_summary(summary, out, chosen, tuple(cfg.pass_k))
    finally:
        chosen.close()
    if summary.rows == summary.bad_rows:
        # Every row an error (or none at all): not a score of 0, a file to look at.
        why = f"; the first: {summary.first_error}" if summary.first_error else ""
        typer.echo(f"error: no row of {file} could be scored ({summary.rows} rows read, {summary.bad_rows} unreadable{why})", err=True)
        raise typer.Exit(1)


def read_fields(cfg):
    """The paths to read, with the golds of ``--golds`` loaded; a bad path or golds file exits 2.

    Caught here, not in cli/errors.py: these checks raise plain ValueError, which elsewhere is a bug."""
    from slowthink.cli.errors import fail
    from slowthink.eval.formats import load_golds

    try:
        golds = load_golds(Path(cfg.golds), cfg.golds_id_field, cfg.golds_answer_field) if cfg.golds else None
        fields = cfg.fields(golds)
        fields.check()
    except (ValueError, OSError) as exc:
        fail(str(exc))
    return fields
