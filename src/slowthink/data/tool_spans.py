"""What the interpreter wrote into a tool-using response, and how that text is tokenized.

A tool-using response (paper section 4.4) interleaves text the model wrote with text the
interpreter inserted: after each executed cell, the cell's output and the closing fence
(and the opening output fence too, when the model closed its code block without writing
one). Two rules, shared by the tool loop, ``distill-tir`` and SFT:

- **Spans.** The inserted text is a list of character spans ``[start, end)`` of the
  response. The tool loop records them per call, ``distill-tir`` writes them into each row
  (``tool_spans``), and SFT masks exactly those when asked. A row without them (data from
  elsewhere) gets ``output_block_spans``: for each ```` ```output ```` / ```` ```Output ````
  fence, from just after the fence to the end of the first line that is exactly
  ```` ``` ````. The fence itself stays out of the span: the model writes it to hand
  over to the interpreter, an action the student must learn. A tool output with a line
  that is exactly ```` ``` ```` cannot be told apart from its end in plain text; recorded
  spans have no such ambiguity.
- **Tokens.** Tool output is untrusted: a cell that prints ``<|im_end|>`` must not put a
  real end-of-turn token into the context. ``encode_untrusted`` encodes it without
  special-token parsing (``split_special_tokens=True``). Model text and tool text are
  encoded piece by piece (``encode_pieces``), as the tool loop builds a response, so no
  token straddles a span's edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Span = tuple[int, int]
OUTPUT_FENCES = ("```output", "```Output")
# The fence, then (group 1) whole lines up to and including a line that is exactly ```.
_OUTPUT_BLOCK_RE = re.compile(r"```(?:output|Output)(\n(?:[^\n]*\n)*?```(?:\n|\Z))")


def output_block_spans(text: str) -> list[Span]:
    """The interpreter's part of each output block of ``text``, for rows without recorded spans."""
    return [match.span(1) for match in _OUTPUT_BLOCK_RE.finditer(text)]


def check_spans(spans: Any, length: int) -> list[Span]:
    """``spans`` as sorted, non-overlapping ``(start, end)`` pairs inside a text of ``length``
    characters; a ValueError says what is wrong (the caller adds where)."""
    if not isinstance(spans, list):
        raise ValueError(f"'tool_spans' must be a list of [start, end] pairs, got {type(spans).__name__}")
    checked: list[Span] = []
    for span in spans:
        if not (isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in span)):
            raise ValueError(f"'tool_spans' entry {span!r} is not a [start, end] pair of integers")
        start, end = span
        if not 0 <= start <= end <= length:
            raise ValueError(f"'tool_spans' entry [{start}, {end}] is outside the response's {length} characters")
        if checked and start < checked[-1][1]:
            raise ValueError(f"'tool_spans' entry [{start}, {end}] overlaps or precedes the one before; spans must be sorted")
        checked.append((start, end))
    return checked


def call_spans(tool_calls: Sequence[Mapping[str, Any]]) -> list[Span]:
    """The recorded spans of the tool loop's call records (``{"span": [start, end], ...}``;
    a call that did not run has none), in order."""
    return [(int(call["span"][0]), int(call["span"][1])) for call in tool_calls if call.get("span") is not None]


def pieces(text: str, spans: Sequence[Span]) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_tool) pieces covering ``text`` in order, empty ones left out."""
    at = 0
    for start, end in spans:
        if start > at:
            yield at, start, False
        if end > start:
            yield start, end, True
        at = end
    if at < len(text):
        yield at, len(text), False


def encode_plain(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` alone, without BOS/EOS (HF tokenizers add them by default)."""
    try:
        return list(tokenizer.encode(text, add_special_tokens=False))
    except TypeError:
        return list(tokenizer.encode(text))


def encode_untrusted(tokenizer: Any, text: str) -> list[int]:
    """Token ids of tool output: special-token strings in it are spelled out as ordinary
    text, never parsed into control tokens. A tokenizer without the option (no HF
    tokenizer) has no special tokens to parse."""
    try:
        return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))
    except TypeError:
        return encode_plain(tokenizer, text)


def encode_pieces(tokenizer: Any, text: str, spans: Sequence[Span]) -> list[int]:
    """Token ids of ``text``: model pieces encoded as usual, tool spans as untrusted."""
    ids: list[int] = []
    for start, end, is_tool in pieces(text, spans):
        ids += (encode_untrusted if is_tool else encode_plain)(tokenizer, text[start:end])
    return ids
