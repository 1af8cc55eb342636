"""How a command-line override's text is read: by the type of the field it lands in.

``kl.mode=off`` parsed as YAML 1.1 is the boolean False, ``007`` the int 7 and ``null``
None, so a text field could never be given those words. Instead ``parse_override`` keeps
the text as typed (``OverrideText``) and ``resolve_overrides`` reads it once the field is
known:

- a text field (``str``, a ``Literal`` of strings, a path) gets the text as typed;
- an ``Optional`` field gets None for ``null`` (or ``~``), else its inner type's reading;
- a number field a number (``1e-3`` too, which YAML 1.1 leaves as text);
- a bool field, a list, a mapping, anything else: the text parsed as YAML, where only
  true/false are booleans (so ``kl={mode: off, coef: 0}`` keeps "off" too);
- a quoted value (``kl.mode="off"``, ``text='007'``) is the text inside the quotes, as YAML
  reads a quoted scalar, whatever the field.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel

from slowthink.config.fields import dict_value_type, is_union, model_in, strip_annotated

_NULL_WORDS = ("null", "Null", "NULL", "~")


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.2), not YAML 1.1's yes/no/on/off."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml12(text: str) -> Any:
    """Config YAML (files, and override lists and mappings): ``mode: off`` is the text "off".

    A bool field still takes yes/no/on/off, since pydantic reads those words as booleans.
    """
    return yaml.load(text, Loader=_Yaml12Loader)


class OverrideText(str):
    """A command-line override's value exactly as typed, waiting for its field's type."""


def resolve_overrides(model: type[BaseModel], data: Any) -> Any:
    """``data`` with every ``OverrideText`` inside replaced by its reading for ``model``'s fields."""
    return _resolve(model, data)


def _resolve(annotation: Any, value: Any) -> Any:
    if isinstance(value, OverrideText):
        return read_override(annotation, str(value))
    if isinstance(value, dict):
        model, nesting = model_in(annotation)
        if model is not None and nesting == "":
            fields = model.model_fields
            return {k: _resolve(fields[k].annotation if k in fields else Any, v) for k, v in value.items()}
        value_type = dict_value_type(annotation)
        return {k: _resolve(value_type, v) for k, v in value.items()}
    return value


def read_override(annotation: Any, text: str) -> Any:
    """The value of ``text`` for a field annotated ``annotation``."""
    quoted = _quoted_text(text)
    if quoted is not None:
        return quoted  # 'kl.mode="off"': a quoted scalar is text, as YAML reads it
    annotation = strip_annotated(annotation)
    if is_union(annotation):
        return _read_union(get_args(annotation), text)
    if _is_text(annotation):
        return text
    if annotation in (int, float):
        return _number(text, annotation)
    return _yaml(text)


def _read_union(members: tuple[Any, ...], text: str) -> Any:
    """``X | None``: ``null`` is None. Several types: a literal word, a number, text, then YAML."""
    members = tuple(strip_annotated(m) for m in members)
    concrete = [m for m in members if m is not type(None)]
    if len(concrete) < len(members) and text in _NULL_WORDS:
        return None
    if len(concrete) == 1:
        return read_override(concrete[0], text)
    if any(get_origin(m) is Literal and text in get_args(m) for m in concrete):
        return text
    numbers = [m for m in concrete if m in (int, float)]
    if numbers:
        number = _number(text, float if float in numbers else int)
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return number
    if any(_is_text(m) for m in concrete):
        return text
    return _yaml(text)


def _quoted_text(text: str) -> str | None:
    """The text inside a quoted YAML scalar (``"off"``, ``'007'``, escapes read), else None.

    Quotes the shell keeps (``'kl.mode="off"'``), or that a grid file or Makefile writes, would
    otherwise reach a text field as part of the value. A number field then gets the quoted
    digits as text, which pydantic still reads as the number.
    """
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "\"'" or stripped[-1] != stripped[0]:
        return None
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return None  # "a" "b" and the like: not one scalar, the text as typed
    return value if isinstance(value, str) else None


def _is_text(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return all(isinstance(arg, str) for arg in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, (str, PurePath))


def _number(text: str, kind: type) -> Any:
    """int or float from the text (``1e-3`` included); anything else stays text for pydantic to
    reject by name (as YAML, ``off`` would become False and pass as the number 0)."""
    for parse in (int, float) if kind is int else (float,):
        try:
            return parse(text.strip())
        except ValueError:
            continue
    return text


def _yaml(text: str) -> Any:
    if text == "":
        return ""
    try:
        return load_yaml12(text)
    except yaml.YAMLError:
        return text  # pydantic will name the key and show the text
