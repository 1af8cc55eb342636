"""The ``slowthink report`` command: run directories -> ``slowthink.report.write_report``.

Must not import matplotlib or torch at module level: the report module (and matplotlib, when
plotting) is imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer


def report_cli(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (each with metrics.jsonl, and config.yaml)."),
    out: Path = typer.Option(..., "--out", help="Folder for report.md and the PNG figures."),
    title: str = typer.Option("slowthink report", "--title", help="Heading of report.md."),
    smoothing: float = typer.Option(0.6, "--smoothing", min=0.0, max=0.99, help="EMA weight for noisy train metrics (0 = raw)."),
) -> None:
    """Plot training curves of one or more runs and compare them (figures + report.md)."""
    from slowthink.report import write_report

    # A directory that is not a run raises ReportError: exit 2 with its message (cli/errors.py).
    path = write_report(run_dirs, out, title=title, smoothing=smoothing)
    typer.echo(str(path))
