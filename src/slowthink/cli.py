"""The ``slowthink`` command. Each subcommand is a thin wrapper over a recipe function.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).
"""

from __future__ import annotations

import os

# OpenMP threads sleep rather than spin while they wait; read when torch loads, so set here.
# Spinning threads beside one busy process made an RL step 4x slower (issue 12).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from slowthink.cli_errors import guarded

app = typer.Typer(
    help="slowthink: train and evaluate R1-like slow-thinking reasoning models (RLVR, long-CoT SFT, tools).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slowthink")
    except PackageNotFoundError:
        from slowthink import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"slowthink {installed_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """slowthink: train and evaluate R1-like slow-thinking reasoning models (RLVR, long-CoT SFT, tools)."""


# Subcommands are registered below, one import line each, so their heavy imports stay lazy.
# Each runs under `guarded` (cli_errors.py): a user's mistake is one message and exit 2.

from slowthink.command_config import ConfigCommand, config_cli  # noqa: E402  (config classes load when asked for)
from slowthink.recipes.cli_train import demo_cli, rl_cli, sft_cli  # noqa: E402

# `slowthink config CMD` lists every key of CMD's config; `--help` of CMD points there.
app.command("config")(guarded(config_cli))

app.command("demo")(guarded(demo_cli))
app.command("rl", cls=ConfigCommand)(guarded(rl_cli))
app.command("sft", cls=ConfigCommand)(guarded(sft_cli))

from slowthink.recipes.score import score_command  # noqa: E402

app.command("score", cls=ConfigCommand)(guarded(score_command))

from slowthink.recipes.evaluate import eval_cli  # noqa: E402
from slowthink.serve import serve_cli  # noqa: E402

app.command("eval", cls=ConfigCommand)(guarded(eval_cli))
app.command("serve", cls=ConfigCommand)(guarded(serve_cli))

from slowthink.sandbox.cli import sandbox_app  # noqa: E402

for _command in sandbox_app.registered_commands:
    _command.callback = guarded(_command.callback)
app.add_typer(sandbox_app, name="sandbox")

from slowthink.report import report_cli  # noqa: E402  (matplotlib is imported only when plotting)

app.command("report")(guarded(report_cli))

from slowthink.recipes.distill_tir import distill_tir_cli  # noqa: E402  (teacher, sandbox and checker load when run)

app.command("distill-tir", cls=ConfigCommand)(guarded(distill_tir_cli))

from slowthink.study.cli import study_cli  # noqa: E402  (recipes load when the grid runs)

app.command("study", cls=ConfigCommand)(guarded(study_cli))

from slowthink.curate.cli import curate_cli  # noqa: E402  (datasketch and math-verify load when run)

app.command("curate", cls=ConfigCommand)(guarded(curate_cli))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
