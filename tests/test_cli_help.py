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
