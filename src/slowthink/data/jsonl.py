"""The one JSONL reader and line writer: for ``slowthink score``, eval's ``--data`` and RL/SFT
``data.train_file`` (through ``data.problems``).

The policy, in full (each point is what a file met in the wild needs):

- **Lines are split on ``\\n`` only.** The file is read as bytes; a bare ``\\r`` inside a
  line (JSON allows it as whitespace between tokens) is never a line break (Python's
  universal-newline text mode would break there), so line N of the file is row N for every
  reader. A ``\\r\\n`` ending is just JSON whitespace before the newline.
- **Each line is decoded as UTF-8 on its own.** Invalid bytes are reported with their
  line and byte offset, never silently replaced by U+FFFD, and they do not spoil the
  other lines.
- **``json.loads`` is guarded**: bad JSON names its column; nesting too deep for the
  parser (``RecursionError``) is a per-row error, not a crash.
- **A last line without its newline that is not valid JSON** was cut short (a kill while
  the file was being written); it is reported as such, distinct from a bad row.
- **Blank lines** (only whitespace) are skipped; line numbers stay those of the file.

``read_jsonl`` never raises for a bad row: it yields a ``JsonlRow`` whose ``error`` says
what is wrong, and each caller decides (score writes an ``error`` status for the row;
problem and SFT loaders raise ``DataError`` naming ``file:line``).

``dumps_line`` is the writer's half: a row whose strings hold lone surrogates (``"\\udcff"``
read from JSON) cannot be encoded as UTF-8, so it is written with ASCII escapes instead
of being lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JsonlRow:
    """One non-blank line: its number (from 1) and the parsed value, or why it could not be read."""

    line: int
    value: Any = None
    # None when ``value`` is the line's JSON; otherwise a one-line reason (no file name).
    error: str | None = None
    # The line was the last one, had no newline, and did not parse: cut short by a kill.
    truncated: bool = False


def parse_line(raw: bytes, line: int, last_without_newline: bool = False) -> JsonlRow:
    """Decode and parse one line's bytes (without its ``\\n``) under the policy above."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonlRow(line, error=f"invalid UTF-8 at byte {exc.start} of the line ({raw[exc.start : exc.start + 4]!r})")
    try:
        return JsonlRow(line, json.loads(text))
    except RecursionError:
        return JsonlRow(line, error="JSON nested too deeply to read")
    except json.JSONDecodeError as exc:
        if last_without_newline:
            return JsonlRow(
                line,
                error=f"last line cut short (no newline at the end and not valid JSON: {exc.msg}); "
                "the file was probably truncated while being written",
                truncated=True,
            )
        return JsonlRow(line, error=f"not valid JSON ({exc.msg} at column {exc.colno})")


def read_jsonl(path: str | Path) -> Iterator[JsonlRow]:
    """Yield a ``JsonlRow`` for every non-blank line of ``path``, in file order.

    Streams the file (binary iteration splits on ``\\n`` only), so large training files
    are not held in memory. A missing file raises ``FileNotFoundError``.
    """
    with Path(path).open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            body = raw[:-1] if complete else raw
            if not body.strip():
                continue
            yield parse_line(body, line, last_without_newline=not complete)


def dumps_line(value: Any) -> str:
    """One JSONL line (with its ``\\n``) for ``value``; non-ASCII text stays readable.

    A lone surrogate cannot be written as UTF-8: such a row is written with ``\\uXXXX``
    escapes (``ensure_ascii``), which read back to the same value, so no row is lost.
    """
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True)
    return text + "\n"
