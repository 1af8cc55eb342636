"""Shared by the flag tests of commands whose keys moved into sections (eval, distill-tir):
run a command with ``--print-config``, read a dotted key, list the flags it declares."""

from __future__ import annotations

from functools import reduce

import typer
import yaml
from typer.testing import CliRunner

from slowthink.cli import app


def printed_config(command: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """The resolved config ``slowthink COMMAND ARGS --print-config`` prints."""
    result = CliRunner().invoke(app, [command, *args, "--print-config"], env=env)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def at(config: dict, dotted: str):
    return reduce(lambda node, part: node[part], dotted.split("."), config)


def declared_options(command_name: str) -> set[str]:
    """Every option name the command declares, but --help and --print-config."""
    command = typer.main.get_command(app).commands[command_name]
    names = {
        name
        for param in command.get_params(typer.Context(command, info_name=command_name))
        if param.param_type_name == "option"
        for name in [*param.opts, *param.secondary_opts]
    }
    return names - {"--help", "--print-config"}


def tested_options(flag_cases: list) -> set[str]:
    return {arg for args, _, _ in flag_cases for arg in args if arg.startswith("-")}
