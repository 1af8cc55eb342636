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
    are built from its config's fields: both found only when the command runs or shows its help."""

    _flagged: Any = None

    def _with_flags(self, ctx: Any) -> Any:
        flags = getattr(self.callback, "config_flags", ())
        if flags and self._flagged is None:
            self._flagged = _with_flags(self.callback.__wrapped__, config_class(ctx.info_name), flags)
        return self._flagged

    def get_params(self, ctx: Any) -> list[Any]:
        flagged = self._with_flags(ctx)
        return flagged.get_params(ctx) if flagged is not None else super().get_params(ctx)

    def invoke(self, ctx: Any) -> Any:
        flagged = self._with_flags(ctx)
        return ctx.invoke(flagged.callback, **ctx.params) if flagged is not None else super().invoke(ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = help_epilog(ctx.info_name)
        super().format_help(ctx, formatter)


# --- flags generated from dotted keys ----------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one config key. Its type, help and default are the field's,
    read when the command runs or shows its help (so ``import slowthink.cli`` loads no config class)."""

    key: str
    names: tuple[str, ...] = ()  # default: --LAST-PART-OF-KEY
    envvar: str | None = None

    @property
    def option_names(self) -> tuple[str, ...]:
        return self.names or ("--" + self.key.rsplit(".", 1)[-1].replace("_", "-"),)

    @property
    def parameter(self) -> str:
        """The Python name click gives the value: the first long name, without the off switch."""
        long = next(name for name in self.option_names if name.startswith("--"))
        return long.split("/")[0].removeprefix("--").replace("-", "_")


def flag(key: str, *names: str, envvar: str | None = None) -> Flag:
    return Flag(key, names, envvar)


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
    """The type typer parses a flag's text with: int and float as numbers, lists as repeatable, the rest text."""
    inner, _ = unwrap_optional(annotation)
    if get_origin(inner) in (list, tuple):
        return list[_scalar(get_args(inner)[0])]
    return _scalar(inner) | None


def _scalar(annotation: Any) -> Any:
    inner, _ = unwrap_optional(annotation)
    return inner if inner in (int, float, bool) else str


def _flag_parameter(model: type[BaseModel], spec: Flag) -> inspect.Parameter:
    section, field = field_at(model, spec.key)
    default = default_text(field)
    shown = f" (default {default})" if default not in ("null", "required", "[]", "(section)") else ""
    choices = allowed_values(field.annotation)
    shown += f" (one of: {choices})" if choices else ""
    help_text = f"(key {spec.key}) {field_doc(section, spec.key.rsplit('.', 1)[-1])}{shown}"
    option = typer.Option(None, *spec.option_names, help=help_text, envvar=spec.envvar)
    return inspect.Parameter(spec.parameter, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=_flag_type(field.annotation))


def _with_flags(callback: Callable[..., Any], model: type[BaseModel], flags: tuple[Flag, ...]) -> Any:
    """A click command with ``callback``'s own parameters and one option per flag; it calls
    ``callback(..., flags={key: value})``."""
    original = inspect.unwrap(callback)
    hints = get_type_hints(original)
    declared = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]) for p in inspect.signature(original).parameters.values()]
    # The flags go where the command's own options end, before --print-config.
    cut = next((i for i, p in enumerate(declared) if p.name == "show_config"), len(declared))
    generated = [_flag_parameter(model, spec) for spec in flags]
    keys = {spec.parameter: spec.key for spec in flags}

    def run(**kwargs: Any) -> Any:
        given = {keys[name]: kwargs.pop(name) for name in keys}
        return callback(**kwargs, flags=given)

    parameters = [*declared[:cut], *generated, *declared[cut:]]
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
