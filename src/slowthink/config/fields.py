"""What a field's annotation holds: the one place that unwraps ``Annotated``, ``X | None`` and sections,
and the one walk from a dotted key to the annotation it lands in."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def strip_annotated(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X; anything else as it is."""
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other annotation -> (it, False). ``Annotated`` is looked through."""
    annotation = strip_annotated(annotation)
    if is_union(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(annotation)):
            return strip_annotated(args[0]), True
    return annotation, False


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def model_in(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The section a field holds and how it nests: '' itself (through ``X | None`` and unions),
    '[]' list items, '.<name>' mapping values; (None, '') for a plain value."""
    inner, _ = unwrap_optional(annotation)
    for candidate in get_args(inner) if is_union(inner) else (inner,):
        if _is_model(strip_annotated(candidate)):
            return strip_annotated(candidate), ""
    origin, args = get_origin(inner), get_args(inner)
    if origin in (list, tuple) and args and _is_model(args[0]):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return args[1], ".<name>"
    return None, ""


def annotation_at(model: type[BaseModel], parts: Sequence[str]) -> Any:
    """The annotation of the value at dotted ``parts``: through sections and mapping values
    (``factors.<name>.arms``); Any past a list, a plain value or an unknown key."""
    annotation: Any = model
    for part in parts:
        section, nesting = model_in(annotation)
        if section is not None and not nesting:
            annotation = section.model_fields[part].annotation if part in section.model_fields else Any
        else:
            inner, _ = unwrap_optional(annotation)
            args = get_args(inner)
            annotation = args[1] if get_origin(inner) is dict and len(args) == 2 else Any
    return annotation


def field_at(model: type[BaseModel], key: str) -> tuple[type[BaseModel], Any]:
    """(the section that holds ``key``, its pydantic field) for a dotted key like ``filters.ngram``."""
    *parents, last = key.split(".")
    section, nesting = model_in(annotation_at(model, parents))
    if section is None or nesting or last not in section.model_fields:
        raise KeyError(f"{model.__name__} has no key '{key}'")
    return section, section.model_fields[last]
