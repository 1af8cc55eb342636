"""The ``slowthink study`` command: plan, run (resuming), report (the grid itself: slowthink/study/).

Must not import torch, transformers or a recipe at module level: the study package is
imported inside the command, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import typer


def study_cli(
    grid: Path = typer.Argument(..., help="Grid file, e.g. configs/study/table1_tiny.yaml"),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides of the grid file, e.g. seeds=[0] parallel=2"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the runs the grid needs, which are done, and the estimated wall time of the rest; run nothing."
    ),
    report_only: bool = typer.Option(False, "--report-only", help="Write the report from the runs that exist; run nothing."),
    report_dir: Path | None = typer.Option(None, "--report-dir", help="Where report.md/html go (default: the grid's report_dir)."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved grid config as YAML and exit."),
) -> None:
    """Run every arm x seed of a study grid (resumable) and report each claim's verdict."""
    from slowthink.study.config import load_study
    from slowthink.study.plan import build_plan
    from slowthink.study.report import write_study_report
    from slowthink.study.runner import run_study

    started = time.perf_counter()
    study, root = load_study(grid, overrides)
    if show_config:
        from slowthink.cli.command_config import print_config

        print_config(study)
    plan = build_plan(study, root)
    if dry_run:
        print_estimate(study, plan)
        return
    outcome = None
    if not report_only:
        outcome = run_study(study, plan)  # a study directory another process holds: exit 2 (cli/errors.py)
    command = " ".join(shlex.quote(str(a)) for a in ["slowthink", "study", grid, *(overrides or [])])
    target = report_dir or Path(study.report_dir or Path(study.output_dir) / "report")
    md, html = write_study_report(study, plan, outcome, target, command=command, wall_s=None if report_only else time.perf_counter() - started)
    print(f"report: {md} and {html}")
    if outcome is not None and outcome.failed:
        raise typer.Exit(1)


def print_estimate(study, plan) -> None:
    """Each run (done, or its estimated minutes) and the estimated wall time of the rest."""
    from slowthink.study.estimate import estimate

    result = estimate(study, plan)
    for item in result.jobs:
        status = "done " if item.done else f"to do  ~{item.seconds / 60:5.1f} min{'' if item.measured else '*'}"
        print(f"{status}  {item.job.run_dir}")
    done = sum(item.done for item in result.jobs)
    print(f"{len(result.jobs)} runs, {done} done")
    if done < len(result.jobs):
        source = (
            "measured on this study's finished runs"
            if result.measured_share == 1
            else "* from the grid's cost section (per-step costs measured on the development machine) until runs of that arm finish here"
        )
        print(
            f"estimated wall time of the rest: {result.wall_s / 3600:.1f} h ({result.wall_s / 60:.0f} min) with parallel={study.parallel}; {source}"
        )
