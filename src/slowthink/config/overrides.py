"""How a command-line override's text is read: by the type of the field it lands in.

As YAML 1.1, ``kl.mode=off`` would be False, ``007`` the int 7 and ``null`` None, so a text
field could never take those words. Instead the text is validated as the field's type, as
pydantic reads text: "3" for an int, "1e-3" for a float, "off" for a bool, any word for a
text field. ``null`` (or ``~``) is None where the field takes None. What a type cannot read
from text (a list, a mapping, a section) is parsed as YAML with only true/false as booleans,
so ``kl={mode: off, coef: 0}`` keeps "off" too. A quoted value (``kl.mode="off"``,
``text='007'``) is the text inside the quotes, as YAML reads a quoted scalar, whatever the field.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

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


def read_override(annotation: Any, text: str) -> Any:
    """The value of ``text`` for a field annotated ``annotation`` (Any: an unknown key)."""
    quoted = _quoted_text(text)
    if quoted is not None:
        return quoted  # 'kl.mode="off"': a quoted scalar is text (a number field still reads '1e-3' as a number)
    if annotation is not Any:
        adapter = TypeAdapter(annotation)
        for value in (None, text) if text in _NULL_WORDS else (text, _as_float(text)):
            try:
                return adapter.validate_python(value)
            except ValidationError:
                continue
    try:
        value = load_yaml12(text) if text else text
    except yaml.YAMLError:
        return text  # pydantic will name the key and show the text
    # A word the type cannot read stays as typed: as YAML, `count=true` would pass as the number 1.
    return value if annotation is Any or isinstance(value, (list, dict)) else text


def _as_float(text: str) -> Any:
    """``1e3`` for an int field: pydantic reads only digits as an int, but takes a whole float."""
    try:
        return float(text)
    except ValueError:
        return text


def _quoted_text(text: str) -> str | None:
    """The text inside a quoted YAML scalar (``"off"``, ``'007'``, escapes read), else None.
    Quotes that the shell keeps, or a study grid or Makefile writes, are not part of the value."""
    stripped = text.strip()
    if len(stripped) < 2 or stripped[0] not in "\"'" or stripped[-1] != stripped[0]:
        return None
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return None  # "a" "b" and the like: not one scalar, the text as typed
    return value if isinstance(value, str) else None
