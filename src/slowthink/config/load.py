"""Loading a config: a YAML file, then a command's flags, then dotted overrides, validated
into one frozen config or one ``ConfigError`` for people (config/__init__.py)."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from slowthink.config.base import ConfigError, StrictConfig
from slowthink.config.fields import annotation_at, model_in
from slowthink.config.overrides import load_yaml12, read_override

T = TypeVar("T", bound="StrictConfig")


def format_validation_error(model: type[BaseModel], error: ValidationError, source: str = "", overrides: Sequence[str] = ()) -> str:
    """Turn pydantic's error into lines that name each dotted key and what is allowed.

    An error in a key that one of ``overrides`` set is blamed on that override, not on
    ``source`` (the file): a typo on the command line is looked for on the command line.
    A misspelt key or value gets the closest allowed one as a suggestion.
    """
    lines, blamed = [], []
    for item in error.errors():
        override = _override_behind(tuple(str(p) for p in item["loc"]), overrides) if item["type"] != "value_error" else None
        blamed.append(override)
        lines.append((f"override {override}: " if override else "") + _error_line(model, item))
    places = ([f"in {source}"] if source and None in blamed else []) + (["on the command line"] if any(blamed) else [])
    where = f" {' and '.join(places)}" if places else ""
    return f"invalid config{where}:\n  " + "\n  ".join(lines)


def _error_line(model: type[BaseModel], item: Any) -> str:
    key = ".".join(str(p) for p in item["loc"])
    if item["type"] == "extra_forbidden":
        section, nesting = model_in(annotation_at(model, [str(p) for p in item["loc"][:-1]]))
        allowed = sorted(section.model_fields) if section is not None and not nesting else []
        close = difflib.get_close_matches(str(item["loc"][-1]), allowed, n=1)
        hint = f" (did you mean '{'.'.join([*map(str, item['loc'][:-1]), close[0]])}'?)" if close else ""
        return f"unknown key '{key}'{hint}; allowed keys here: {', '.join(allowed)}"
    if item["type"] == "value_error":
        # Our own validators (impossible combinations) name the keys and values themselves;
        # their input is a whole section (or the whole config), too long to echo back.
        message = str(item.get("ctx", {}).get("error", item["msg"]))
        return f"'{key}': {message}" if key else message
    hint = ""
    if item["type"] == "literal_error" and isinstance(item.get("input"), str):
        close = difflib.get_close_matches(item["input"], re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", ""))), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"'{key}': {item['msg']} (got {item.get('input')!r}){hint}"


def _override_behind(loc: tuple[str, ...], overrides: Sequence[str]) -> str | None:
    """The last override that set the key at ``loc``, a key inside it, or its section."""
    if not loc:
        return None
    for text in reversed(overrides):
        path = tuple(parse_override(text)[0])
        if loc[: len(path)] == path or path[: len(loc)] == loc:
            return text
    return None


def parse_override(text: str) -> tuple[list[str], str]:
    """``rl.kl.coef=0.001`` -> (['rl', 'kl', 'coef'], '0.001'): the value stays text until validation."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    return key.split("."), raw


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """A copy of ``data`` with each dotted override set (nested dicts are created); with ``model``,
    each value is read by the type of its field (overrides.py), else it stays text."""
    merged = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_key(merged, ".".join(path), read_override(annotation_at(model, path), value) if model is not None else value)
    return merged


def shipped_config_dir() -> Path:
    """The presets shipped inside the package (``slowthink/configs``), present in a wheel install too."""
    return Path(str(resources.files("slowthink").joinpath("configs")))


def resolve_config_path(path: str | Path) -> Path:
    """``configs/tiny_rl.yaml`` (or ``tiny_rl.yaml``) names a shipped preset when no such file is here.

    A checkout has ``configs/`` (a link to the package's presets); after ``pip install`` the
    README's commands still work from any directory. A file that exists always wins.
    """
    path = Path(path)
    if path.is_file() or path.is_absolute() or (len(path.parts) > 1 and path.parts[0] != "configs"):
        return path
    # tiny_rl.yaml or configs/tiny_rl.yaml (configs/study/table1_tiny.yaml too)
    shipped = shipped_config_dir().joinpath(*(path.parts[1:] if len(path.parts) > 1 else path.parts))
    return shipped if shipped.is_file() else path


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a ``ConfigError`` naming the file."""
    path = resolve_config_path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = load_yaml12(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(model: type[T], path: str | Path | None = None, overrides: list[str] | None = None, flags: dict[str, Any] | None = None) -> T:
    """The one loader: YAML file (optional) < flags given (dotted key -> typed value; None, [] and
    () mean not given) < dotted overrides -> validated, frozen config."""
    data = read_yaml(path) if path is not None else {}
    for key, value in (flags or {}).items():
        if value is not None and value != [] and value != ():
            set_key(data, key, value)
    try:
        return model.model_validate(apply_overrides(data, overrides or [], model))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(model, exc, str(path or ""), overrides or [])) from None


def config_to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML, written into each run directory."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def split_config_argument(config: str | Path | None, overrides: list[str] | None) -> tuple[Path | None, list[str]]:
    """``slowthink rl kl.coef=0`` has no YAML file: its first argument is an override."""
    overrides = list(overrides or [])
    if config is not None and "=" in str(config) and not Path(config).exists():
        return None, [str(config), *overrides]
    return (Path(config) if config is not None else None), overrides


def split_overrides(args: list[str] | None) -> tuple[list[str], list[str]]:
    """Positional arguments -> (inputs, overrides): ``key=value`` is an override unless it names an existing file."""
    inputs, overrides = [], []
    for arg in args or []:
        is_override = "=" in arg and not arg.startswith("=") and not Path(arg).exists()
        (overrides if is_override else inputs).append(arg)
    return inputs, overrides


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts (created as needed) to an already-typed value."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value
