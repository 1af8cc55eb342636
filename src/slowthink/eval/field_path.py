"""Dotted paths into nested rows: where ``slowthink score`` finds a gold, a response, an id.

Other toolkits nest what ``score`` needs: lighteval's details keep the gold at
``doc.choices[doc.gold_index]`` and the responses at ``model_response.text``, an OpenAI
batch output at ``response.body.choices[*].message.content``. A path is:

- ``name``: a key of the row (a plain name is also the whole key when the row has a key
  with dots in it, as flat files written by older tools do);
- ``.name``: a key of the value so far; ``["key.with.dots"]`` quotes a key;
- ``[3]``, ``[-1]``: a list index;
- ``[other.path]``: an index or key read from the row itself (``doc.gold_index``);
- ``[*]``: every element: the rest of the path is read from each, giving a list.

``resolve`` raises ``PathError`` naming the step that failed and what was there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class PathError(ValueError):
    """A path that does not lead anywhere in this row."""


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Index:
    value: int


@dataclass(frozen=True)
class _Nested:
    path: tuple


@dataclass(frozen=True)
class _All:
    pass


_NAME = re.compile(r"[^.\[\]]+")
_INT = re.compile(r"-?\d+")


def parse_path(text: str) -> tuple:
    """The steps of ``text``; a malformed path is a ``ValueError`` naming the position."""
    steps, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char == "." and steps:
            pos += 1
            match = _NAME.match(text, pos)
            if not match:
                raise ValueError(f"path {text!r}: expected a name after '.' at position {pos}")
            steps.append(_Key(match.group()))
            pos = match.end()
        elif char == "[":
            end = _closing_bracket(text, pos)
            steps.append(_bracket(text[pos + 1 : end], text))
            pos = end + 1
        elif not steps and (match := _NAME.match(text, pos)):
            steps.append(_Key(match.group()))
            pos = match.end()
        else:
            raise ValueError(f"path {text!r}: unexpected {char!r} at position {pos}")
    if not steps:
        raise ValueError("empty path")
    return tuple(steps)


def _closing_bracket(text: str, start: int) -> int:
    depth, quoted = 0, False
    for pos in range(start, len(text)):
        char = text[pos]
        if char == '"' and text[pos - 1] != "\\":
            quoted = not quoted
        elif not quoted and char == "[":
            depth += 1
        elif not quoted and char == "]":
            depth -= 1
            if depth == 0:
                return pos
    raise ValueError(f"path {text!r}: '[' at position {start} is never closed")


def _bracket(inner: str, text: str):
    inner = inner.strip()
    if inner == "*":
        return _All()
    if _INT.fullmatch(inner):
        return _Index(int(inner))
    if inner.startswith('"'):
        try:
            return _Key(json.loads(inner))
        except json.JSONDecodeError:
            raise ValueError(f"path {text!r}: bad quoted key {inner}") from None
    if not inner:
        raise ValueError(f"path {text!r}: empty []")
    return _Nested(parse_path(inner))


def _show(steps: tuple) -> str:
    out = ""
    for step in steps:
        if isinstance(step, _Key):
            out += ("." if out else "") + step.name
        elif isinstance(step, _Index):
            out += f"[{step.value}]"
        elif isinstance(step, _All):
            out += "[*]"
        else:
            out += f"[{_show(step.path)}]"
    return out


def _step(value: Any, key: Any, where: str) -> Any:
    if isinstance(value, dict):
        if not isinstance(key, str):
            raise PathError(f"{where}: an object, indexed by {key!r}")
        if key not in value:
            keys = ", ".join(sorted(map(str, value))[:12])
            raise PathError(f"{where}: no key {key!r} (keys: {keys})")
        return value[key]
    if isinstance(value, list):
        if isinstance(key, bool) or not isinstance(key, int):
            raise PathError(f"{where}: a list, indexed by {key!r}")
        if not -len(value) <= key < len(value):
            raise PathError(f"{where}: index {key} outside a list of {len(value)}")
        return value[key]
    raise PathError(f"{where}: a {type(value).__name__}, not an object or a list")


def resolve(row: Any, path: str | tuple) -> Any:
    """The value ``path`` leads to in ``row`` (a list for ``[*]``)."""
    steps = parse_path(path) if isinstance(path, str) else path
    # A flat key with dots in it ("doc.gold") is read as that key when the row has it.
    if isinstance(path, str) and isinstance(row, dict) and path in row:
        return row[path]
    return _walk(row, row, steps, 0)


def _walk(root: Any, value: Any, steps: tuple, start: int) -> Any:
    for index in range(start, len(steps)):
        step, where = steps[index], _show(steps[:index]) or "the row"
        if isinstance(step, _All):
            if not isinstance(value, list):
                raise PathError(f"{where}: [*] needs a list, found a {type(value).__name__}")
            return [_walk(root, item, steps, index + 1) for item in value]
        if isinstance(step, _Key):
            value = _step(value, step.name, where)
        elif isinstance(step, _Index):
            value = _step(value, step.value, where)
        else:
            value = _step(value, resolve(root, step.path), where)
    return value
