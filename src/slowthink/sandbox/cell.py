"""Running one cell inside the (already limited) child process.

Standard library only: this module runs inside the sandbox worker. A cell that prints
nothing shows the repr of its last expression, found from the syntax tree so that the
code runs exactly once (docs/design.md, "Tool-integrated reasoning": models end code with
``sp.solve(...)`` rather than ``print(...)``).
"""

from __future__ import annotations

import ast
import builtins
import io
import linecache
import os
import sys
import traceback
from typing import Any

# Exit codes / status bytes from a child to the worker. 86 rather than 2 or 3 so that
# a cell's own ``sys.exit(3)`` is not mistaken for a memory failure.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_MEMORY = 86
CELL_FILENAME = "<cell>"


class TrackedStdout(io.TextIOWrapper):
    """stdout that remembers whether the cell printed anything."""

    written = False

    def write(self, text: str) -> int:
        if text:
            self.written = True
        return super().write(text)


def install_std_streams() -> TrackedStdout:
    """New Python-level streams over fds 0/1/2 (the worker's objects belong to the worker)."""
    stdout = TrackedStdout(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stdout = sys.__stdout__ = stdout
    err = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stderr = sys.__stderr__ = err
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    return stdout


def split_last_expression(code: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell's body without its final expression statement, and that expression."""
    tree = ast.parse(code, CELL_FILENAME, "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        return tree, ast.fix_missing_locations(last)
    return tree, None


def _print_exception(exc: BaseException) -> None:
    """The traceback without the worker's own frame (the first one)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    sys.stderr.write(text)


def run_cell(code: str, namespace: dict[str, Any], stdout: TrackedStdout) -> int:
    """Execute ``code`` in ``namespace``; returns EXIT_OK, EXIT_ERROR or EXIT_MEMORY."""
    stdout.written = False
    try:
        # Registering the source lets tracebacks quote the offending line.
        lines = code.splitlines(keepends=True)
        linecache.cache[CELL_FILENAME] = (len(code), None, lines, CELL_FILENAME)
        body, last = split_last_expression(code)
    except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError) as exc:
        # Code that does not compile: Python's own one-part report, no internal frames. A cell
        # too big or too deep for the parser (a 12 MB expression: MemoryError; 200,000 nested
        # subscripts: RecursionError) is the cell's failure, not the worker's (it used to report the worker's traceback).
        linecache.cache.pop(CELL_FILENAME, None)
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        _flush_quietly()
        return EXIT_MEMORY if isinstance(exc, MemoryError) else EXIT_ERROR
    try:
        exec(compile(body, CELL_FILENAME, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, CELL_FILENAME, "eval"), namespace)
            if value is not None and not stdout.written:
                print(repr(value))
        status = EXIT_OK
    except SystemExit as exc:
        # sys.exit(0) / sys.exit() end a cell normally; any other code is an error.
        status = EXIT_OK if exc.code in (None, 0) else EXIT_ERROR
        if status != EXIT_OK:
            sys.stderr.write(f"SystemExit: {exc.code}\n")
    except MemoryError as exc:
        _print_exception(exc)
        status = EXIT_MEMORY
    except BaseException as exc:  # noqa: BLE001 - the cell's own failure, reported as its result
        _print_exception(exc)
        status = EXIT_ERROR
    _flush_quietly()
    return status


def _flush_quietly() -> None:
    """Flush the streams; a cell that closed its own stdout must not crash the reporting."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def new_namespace() -> dict[str, Any]:
    """Globals of a fresh cell, as a script run as ``__main__`` would see them."""
    return {"__name__": "__main__", "__builtins__": builtins}


def exit_now(status: int) -> None:
    """Leave the child without running the worker's atexit handlers or buffers."""
    _flush_quietly()
    os._exit(status)
