"""The ``slowthink score`` command: options -> ``ScoreConfig`` -> ``recipes.score.score_file``.

Must not import torch, transformers or a recipe at module level: the recipe and the checker
are imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def score_command(
    args: list[str] | None = typer.Argument(
        None, help="FILE.jsonl (rows with a gold answer and a response or a list of responses), then key=value overrides."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML config (keys: slowthink config score)."),
    out: Path = typer.Option(None, "--out", help="(key out) where to write the rows with 'correct' and 'status' added."),
    answer_field: str = typer.Option(None, help="(key answer_field) field holding the gold answer (default answer)."),
    response_field: str = typer.Option(None, help="(key response_field) field holding one response (default response)."),
    responses_field: str = typer.Option(
        None, help="(key responses_field) field holding a list of responses (default responses; wins over --response-field)."
    ),
    checker: str = typer.Option(None, help="(key checker) 'math' (default: math-verify in worker processes) or 'exact'."),
    fallback: bool | None = typer.Option(
        None,
        "--fallback",
        help="(key fallback) evaluation only: when nothing is boxed, also read 'the answer is X', the last $math$, the last number.",
    ),
    workers: int = typer.Option(None, help="(key workers) checker worker processes (default 2; each uses one core)."),
    timeout: float = typer.Option(None, help="(key timeout) seconds one check may take before its worker is killed (default 5)."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """Check saved responses against golds; write them back with 'correct' and 'status'."""
    from slowthink.cli.command_config import print_config, resolve_config, split_overrides
    from slowthink.config import ConfigError
    from slowthink.recipes.score import Fields, ScoreConfig, print_summary, same_file, score_file

    files, overrides = split_overrides(args)
    if len(files) > 1:
        raise ConfigError(f"score takes one input file, got {len(files)}: {' '.join(files)}")
    shorthands = dict(
        file=files[0] if files else None,
        out=out,
        answer_field=answer_field,
        response_field=response_field,
        responses_field=responses_field,
        checker=checker,
        fallback=fallback,
        workers=workers,
        timeout=timeout,
    )
    cfg = resolve_config(ScoreConfig, config, overrides, shorthands)
    if show_config:
        print_config(cfg)
    file, out = Path(cfg.file), Path(cfg.out)
    if not file.is_file():
        typer.echo(f"error: input file {file} does not exist", err=True)
        raise typer.Exit(2)
    if same_file(file, out):
        # Writing the output over the input would destroy it (issue 8: it did, exiting 0).
        typer.echo(f"error: --out {out} is the input file {file} (same file, or a link to it); choose another path", err=True)
        raise typer.Exit(2)
    from slowthink.rewards.checkers import make_checker

    chosen = make_checker(cfg.checker, workers=cfg.workers, timeout_s=cfg.timeout, fallback=cfg.fallback)
    try:
        fields = Fields(cfg.answer_field, cfg.response_field, cfg.responses_field)
        summary = score_file(file, out, chosen, fields, progress=sys.stderr.isatty())
    finally:
        chosen.close()
    print_summary(summary, out)
