"""Every subcommand answers --help (typer), and the top-level help lists them all."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from slowthink.cli import app

COMMANDS = ["demo", "rl", "sft", "score", "eval", "serve", "report", "distill-tir", "sandbox", "sandbox run"]


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    registered = {c.name for c in typer.main.get_command(app).commands.values()}
    assert {c.split()[0] for c in COMMANDS} <= registered


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command):
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_importing_the_cli_does_not_import_torch():
    # `slowthink --help` must answer at once; torch costs ~2 s to import (a regression came in
    # through an exception class imported from a module that imports torch).
    import subprocess
    import sys

    code = "import sys, slowthink.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
