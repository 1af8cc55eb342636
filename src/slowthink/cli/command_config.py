"""One way to configure every command: YAML file + flags + dotted overrides (slowthink/config/).

Every ``slowthink`` command that takes settings (rl, sft, eval, score, serve, distill-tir,
curate, study) reads them into one typed ``StrictConfig`` with ``config.load_config``:

1. an optional YAML file (``configs/NAME.yaml`` names a shipped preset),
2. then the command's flags (``--model``, ``-b``, ``--out``...), each of which sets one key
   and only when given,
3. then dotted overrides ``key.path=value`` (read by the field's type, config/overrides.py),

so a later source wins. ``--print-config`` prints the result as YAML; ``slowthink config
CMD`` lists every key with its type, default, allowed values and doc, and ``slowthink
config --markdown`` writes docs/config.md from the same field docs (config/docs.py).

Must not import torch, transformers or any recipe (tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from slowthink.config import ConfigError, config_to_yaml
from slowthink.config.docs import COMMAND_CONFIGS, help_epilog, keys_text, markdown


def print_config(config: BaseModel) -> None:
    """``--print-config``: the resolved config as YAML on stdout, then exit 0 (nothing runs)."""
    typer.echo(config_to_yaml(config), nl=False)
    raise typer.Exit(0)


class ConfigCommand(typer.core.TyperCommand):
    """A command whose ``--help`` ends with its config sections, found only when help is asked for."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = help_epilog(ctx.info_name)
        super().format_help(ctx, formatter)


def config_cli(
    command: str = typer.Argument(None, help=f"One of: {', '.join(COMMAND_CONFIGS)}."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Write every command's keys as Markdown here (docs/config.md)."),
) -> None:
    """List every config key of a command: type, default, allowed values and doc."""
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(markdown(), encoding="utf-8")
        typer.echo(f"wrote {markdown_path}")
        return
    if command is None:
        raise ConfigError(f"name a command: slowthink config CMD, one of {', '.join(COMMAND_CONFIGS)}")
    typer.echo(keys_text(command), nl=False)
