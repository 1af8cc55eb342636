"""The command-line side of config/: ``--print-config``, ``slowthink config CMD`` and flags
written as dotted keys (``config_flags``), each taking its type, help and default from its field.
The order of sources (YAML file < flags < key=value overrides) is ``config.load_config``'s.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import typer
from pydantic import BaseModel

from slowthink.config import ConfigError, config_to_yaml
from slowthink.config.docs import COMMAND_CONFIGS, allowed_values, config_class, default_text, field_doc, help_epilog, keys_text, markdown
from slowthink.config.fields import field_at, unwrap_optional


def print_config(config: BaseModel) -> None:
    """``--print-config``: the resolved config as YAML on stdout, then exit 0 (nothing runs)."""
    typer.echo(config_to_yaml(config), nl=False)
    raise typer.Exit(0)


class ConfigCommand(typer.core.TyperCommand):
    """A command whose ``--help`` ends with its config sections, and whose flags (``config_flags``)
    are built from its config's fields only when it runs or shows its help, so that
    ``import slowthink.cli`` loads no config class."""

    @functools.cached_property
    def _flagged(self) -> Any:
        """The command with its flags added (a click command), or None for a command without."""
        flags = getattr(self.callback, "config_flags", ())
        return _with_flags(self.callback.__wrapped__, config_class(self.name), flags) if flags else None

    def get_params(self, ctx: Any) -> list[Any]:
        return self._flagged.get_params(ctx) if self._flagged is not None else super().get_params(ctx)

    def invoke(self, ctx: Any) -> Any:
        return ctx.invoke(self._flagged.callback, **ctx.params) if self._flagged is not None else super().invoke(ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = help_epilog(self.name)
        super().format_help(ctx, formatter)


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one config key: its option names, and the Python name click gives its value."""

    key: str
    names: tuple[str, ...]
    parameter: str
    envvar: str | None = None


def flag(key: str, *names: str, envvar: str | None = None) -> Flag:
    """A flag for ``key``, named ``names`` (default: --LAST-PART-OF-KEY)."""
    names = names or ("--" + key.rsplit(".", 1)[-1].replace("_", "-"),)
    long = next(name for name in names if name.startswith("--"))  # click names the value after it, less the off switch
    return Flag(key, names, long.split("/")[0].removeprefix("--").replace("-", "_"), envvar)


def config_flags(*flags: Flag) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command (run with ``cls=ConfigCommand``) these flags; it receives the ones given as
    ``flags={dotted key: value}`` (None or empty for a flag not given), for ``load_config``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        command.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "flags"])  # type: ignore[attr-defined]
        command.config_flags = flags  # type: ignore[attr-defined]
        return command

    return decorate


def _flag_type(annotation: Any) -> Any:
    """The type typer parses a flag's text with: int, float and bool as such, a list as a repeated flag, the rest as text."""
    inner, _ = unwrap_optional(annotation)
    repeated = get_origin(inner) in (list, tuple)
    item = unwrap_optional(get_args(inner)[0])[0] if repeated else inner
    item = item if item in (int, float, bool) else str
    return list[item] if repeated else item | None


def _flag_parameter(model: type[BaseModel], spec: Flag) -> inspect.Parameter:
    field = field_at(model, spec.key)[1]
    default, choices = default_text(field), allowed_values(field.annotation)
    shown = (f" (default {default})" if default not in ("null", "required", "[]") else "") + (f" (one of: {choices})" if choices else "")
    option = typer.Option(None, *spec.names, help=f"(key {spec.key}) {field_doc(field)}{shown}", envvar=spec.envvar)
    return inspect.Parameter(spec.parameter, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=_flag_type(field.annotation))


def _with_flags(callback: Callable[..., Any], model: type[BaseModel], flags: tuple[Flag, ...]) -> Any:
    """A click command with ``callback``'s own parameters and one option per flag; it calls
    ``callback(..., flags={key: value})``."""
    original = inspect.unwrap(callback)
    hints = get_type_hints(original)
    declared = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]) for p in inspect.signature(original).parameters.values()]
    # The flags go where the command's own options end, before --print-config.
    cut = next((i for i, p in enumerate(declared) if p.name == "show_config"), len(declared))
    parameters = [*declared[:cut], *(_flag_parameter(model, spec) for spec in flags), *declared[cut:]]

    def run(**kwargs: Any) -> Any:
        given = {spec.key: kwargs.pop(spec.parameter) for spec in flags}
        return callback(**kwargs, flags=given)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    single = typer.Typer(add_completion=False)
    single.command()(run)
    return typer.main.get_command(single)


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
