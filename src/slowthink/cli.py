"""The ``slowthink`` command. Each subcommand is a thin wrapper over a recipe function."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="slowthink: train and evaluate R1-like slow-thinking reasoning models (RLVR, long-CoT SFT, tools).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Subcommands are registered below, one import line each, so their heavy imports stay lazy.

from slowthink.recipes.cli_train import demo_cli, rl_cli, sft_cli  # noqa: E402

app.command("demo")(demo_cli)
app.command("rl")(rl_cli)
app.command("sft")(sft_cli)

from slowthink.recipes.score import score_command  # noqa: E402

app.command("score")(score_command)

from slowthink.recipes.evaluate import eval_cli  # noqa: E402
from slowthink.serve import serve_cli  # noqa: E402

app.command("eval")(eval_cli)
app.command("serve")(serve_cli)

from slowthink.sandbox.cli import sandbox_app  # noqa: E402

app.add_typer(sandbox_app, name="sandbox")

from slowthink.report import report_cli  # noqa: E402  (matplotlib is imported only when plotting)

app.command("report")(report_cli)

from slowthink.recipes.distill_tir import distill_tir_cli  # noqa: E402  (teacher, sandbox and checker load when run)

app.command("distill-tir")(distill_tir_cli)

from slowthink.study.cli import study_cli  # noqa: E402  (recipes load when the grid runs)

app.command("study")(study_cli)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
