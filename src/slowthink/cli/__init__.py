"""The ``slowthink`` command: the typer ``app``, ``main()``, and one registration line per subcommand.

Every piece of command-line glue lives in this package, one module per command family
(errors, command_config, train, evaluate, score, serve, report, distill_tir, study, curate,
sandbox, export); the recipes and library modules they call know nothing of typer.

Must not import torch, transformers, a recipe or a heavy engine at module level: each
command imports what it runs inside its body, so ``import slowthink.cli`` stays light
(tests/test_cli_help.py). No module outside this package imports it (tests/test_layers.py).
"""

from __future__ import annotations

import os

# OpenMP threads sleep rather than spin while they wait; read when torch loads, so set here.
# Spinning threads beside one busy process made an RL step 4x slower (bench/RESULTS.md, "A busy machine").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from slowthink.cli.errors import guarded

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


# Subcommands are registered below, one line each; each module imports its recipe only when run.
# Each runs under `guarded` (cli/errors.py): a user's mistake is one message and exit 2.

from slowthink.cli.command_config import ConfigCommand, config_cli  # noqa: E402  (config classes load when asked for)
from slowthink.cli.curate import curate_cli  # noqa: E402
from slowthink.cli.distill_tir import distill_tir_cli  # noqa: E402
from slowthink.cli.evaluate import eval_cli  # noqa: E402
from slowthink.cli.export import export_cli  # noqa: E402
from slowthink.cli.plan import plan_cli  # noqa: E402
from slowthink.cli.report import report_cli  # noqa: E402
from slowthink.cli.sandbox import sandbox_app  # noqa: E402
from slowthink.cli.score import score_command  # noqa: E402
from slowthink.cli.serve import serve_cli  # noqa: E402
from slowthink.cli.study import study_cli  # noqa: E402
from slowthink.cli.train import demo_cli, rl_cli, sft_cli  # noqa: E402

# `slowthink config CMD` lists every key of CMD's config; `--help` of CMD points there.
app.command("config")(guarded(config_cli))

app.command("demo")(guarded(demo_cli))
app.command("rl", cls=ConfigCommand)(guarded(rl_cli))
app.command("sft", cls=ConfigCommand)(guarded(sft_cli))
app.command("score", cls=ConfigCommand)(guarded(score_command))
app.command("eval", cls=ConfigCommand)(guarded(eval_cli))
app.command("serve", cls=ConfigCommand)(guarded(serve_cli))

for _command in sandbox_app.registered_commands:
    _command.callback = guarded(_command.callback)
app.add_typer(sandbox_app, name="sandbox")

app.command("report")(guarded(report_cli))
app.command("distill-tir", cls=ConfigCommand)(guarded(distill_tir_cli))
app.command("study", cls=ConfigCommand)(guarded(study_cli))
app.command("curate", cls=ConfigCommand)(guarded(curate_cli))
app.command("export")(guarded(export_cli))
app.command("plan")(guarded(plan_cli))


def main() -> None:
    app()
