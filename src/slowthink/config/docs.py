"""Every key of a command's config, listed: ``slowthink config CMD``, docs/config.md and ``--help``.

A field's doc is written once, where the field is defined: the string under it (``StrictConfig``
sets ``use_attribute_docstrings``) or ``Field(description=...)``; a ``#`` comment is not a doc.
``tests/test_config_docs.py`` fails for a field without one.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from slowthink.config.base import ConfigError
from slowthink.config.fields import is_union, model_in, unwrap_optional

# command -> "module:Class" of its config; imported only when asked for.
COMMAND_CONFIGS: dict[str, str] = {
    "rl": "slowthink.recipes.rl_config:RLConfig",
    "sft": "slowthink.recipes.sft:SFTConfig",
    "eval": "slowthink.recipes.evaluate:EvalConfig",
    "score": "slowthink.recipes.score:ScoreConfig",
    "serve": "slowthink.serve.server:ServeConfig",
    "distill-tir": "slowthink.recipes.distill_tir:DistillTIRConfig",
    "curate": "slowthink.curate.config:CurateConfig",
    "study": "slowthink.study.config:StudyConfig",
}


def config_class(command: str) -> type[BaseModel]:
    """The config class of ``command`` (a ``ConfigError`` listing the commands for another name)."""
    if command not in COMMAND_CONFIGS:
        raise ConfigError(f"no command '{command}' takes a config; commands: {', '.join(COMMAND_CONFIGS)}")
    module, name = COMMAND_CONFIGS[command].split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class KeyDoc:
    """One documented key of a command's config."""

    key: str
    type: str
    default: str
    allowed: str
    doc: str


def type_name(annotation: Any) -> str:
    """A short, readable type: ``int``, ``float | null``, ``list[str]``, ``path``, ``choice`` (a ``Literal``)."""
    inner, optional = unwrap_optional(annotation)
    origin, args = get_origin(inner), [a for a in get_args(inner) if a is not Ellipsis]
    if origin is Literal:
        name = "choice"
    elif is_union(inner):
        name = " | ".join(map(type_name, args))
    elif origin is not None:  # a tuple field is given as a YAML list
        name = f"{'list' if origin is tuple else getattr(origin, '__name__', str(origin))}[{', '.join(map(type_name, args))}]"
    elif isinstance(inner, type):
        name = "path" if issubclass(inner, PurePath) else inner.__name__
    else:
        name = str(inner).replace("typing.", "")
    return name + (" | null" if optional else "")


def allowed_values(annotation: Any) -> str:
    """The choices of a ``Literal`` field (and null where it takes None), else ''."""
    inner, optional = unwrap_optional(annotation)
    values = [str(v) for v in get_args(inner)] + ["null"] * optional if get_origin(inner) is Literal else []
    return ", ".join(values)


def default_text(field: FieldInfo) -> str:
    """A field's default as YAML would read it back (null, true, a list), text quoted; or 'required'."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return repr(value) if isinstance(value, str) else str(list(value) if isinstance(value, tuple) else value)


def field_doc(field: FieldInfo) -> str:
    """A field's doc: its attribute docstring (or ``Field(description=...)``) on one line."""
    return " ".join((field.description or "").split())


def describe(model: type[BaseModel], prefix: str = "") -> list[KeyDoc]:
    """Every key of ``model`` (sections flattened to dotted keys), with type, default, choices, doc."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub, nesting = model_in(field.annotation)
        doc = field_doc(field)
        if sub is not None:
            # A section's doc is its field's, else the first line of its class docstring.
            doc = doc or (sub.__doc__ or "").strip().split("\n")[0]
            rows.append(KeyDoc(key, type_name(field.annotation) if nesting else "section", "", "", doc))
            rows.extend(describe(sub, f"{key}{nesting}."))
            continue
        rows.append(KeyDoc(key, type_name(field.annotation), default_text(field), allowed_values(field.annotation), doc))
    return rows


def undocumented(model: type[BaseModel]) -> list[str]:
    """Dotted keys of ``model`` without a doc (a section counts its class docstring)."""
    return [row.key for row in describe(model) if not row.doc]


def keys_text(command: str) -> str:
    """``slowthink config CMD``: one block per key, for a terminal."""
    model = config_class(command)  # first: an unknown command is a ConfigError listing the commands
    out = [f"keys of `slowthink {command}` ({COMMAND_CONFIGS[command].replace(':', '.')}); set them in the YAML file or as key=value overrides:", ""]
    for row in describe(model):
        if row.type == "section":
            out.append(f"[{row.key}]  {row.doc}".rstrip())
            continue
        choices = f"  one of: {row.allowed}" if row.allowed else ""
        out.append(f"  {row.key}: {row.type} = {row.default}{choices}")
        if row.doc:
            out.append(f"      {row.doc}")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """docs/config.md: every command's keys, generated from the field docs (never edit by hand)."""
    out = [
        "# Configuration keys",
        "",
        "<!-- Generated by `python -m slowthink.cli config --markdown docs/config.md` from the field docs in the",
        "     config classes; tests/test_config_docs.py fails when this file is stale. Do not edit by hand. -->",
        "",
        "Every command reads one typed config: an optional YAML file, then the command's flags",
        "(`--model`, `--out`, ...), then dotted overrides `key.path=value`; later sources win.",
        "`slowthink CMD ... --print-config` prints the resolved config; `slowthink config CMD` lists these keys.",
        "",
    ]
    for command in COMMAND_CONFIGS:
        out += [
            f"## `slowthink {command}`",
            "",
            f"Config class: `{COMMAND_CONFIGS[command].replace(':', '.')}`.",
            "",
            "| key | type | default | allowed | doc |",
            "|---|---|---|---|---|",
        ]
        for row in describe(config_class(command)):
            if row.type == "section":
                out.append(f"| **`{row.key}`** | section | | | {_cell(row.doc)} |")
            else:
                out.append(f"| `{row.key}` | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.allowed)} | {_cell(row.doc)} |")
        out.append("")
    return "\n".join(out)


def help_epilog(command: str) -> str:
    """What ``slowthink CMD --help`` adds under the options: the sections and where the keys are."""
    try:
        names = [name for name, field in config_class(command).model_fields.items() if model_in(field.annotation)[0] is not None]
    except Exception:  # noqa: BLE001 - help must print even if an optional dependency is missing
        names = []
    listed = f"Config sections: {', '.join(names)}. " if names else ""
    return (
        f"{listed}Every key with its type, default and doc: `slowthink config {command}`. "
        "Order: YAML file < flags < key=value overrides; --print-config shows the result."
    )
