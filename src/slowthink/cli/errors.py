"""What the command line does with an error: a person's mistake is one message and exit 2.

Must not import torch, transformers or recipes (tests/test_layers.py); the error types it
classifies are imported when an error happens, so ``import slowthink.cli`` stays light.

Every ``slowthink`` command runs under ``guarded`` (see cli/__init__.py), so no command catches
these itself:

- a **user error** (a bad config key or value, a malformed data row, a missing file or
  model, a run directory held by another process, vLLM chosen where it cannot run, an output
  path that is an input, lies in a read-only directory or is an existing file where a
  directory must go) prints ``error: <message>`` on stderr and exits **2**;
- an **environment failure** outside the user's input (a server that does not answer, a
  sandbox that cannot start, a full disk, another rank of a distributed run gone) prints
  ``error: <message>`` and exits **1**;
- anything else is a bug and keeps its traceback.

Two commands handle something first, because only they know what to say:
``rl``/``sft`` catch Ctrl-C (cli/train.py: the last checkpoint and the
command that resumes, exit 130); and ``export`` reports a failed upload as an environment failure that keeps the exported folder
(cli/export.py). A command that finishes but fails as a whole exits 1 after its output
(``score`` when no row could be scored, ``study`` when a run failed).
"""

from __future__ import annotations

import errno
import functools
import re
import sys
from collections.abc import Callable
from typing import Any

import typer

USER_ERROR = 2
ENVIRONMENT_ERROR = 1

# gloo's words when a peer's connection closed: its process died, or its node was lost.
LOST_PEER = re.compile(r"(\w+ error \[[^\]]*\]:\d+: )?Connection (reset|closed) by peer")
# gloo's words when a peer sent nothing for distributed.timeout_minutes: stopped, cut off, or slow.
SILENT_PEER = re.compile(r"Timed out waiting \d+ms for \w+ operation to complete")

# A path the user chose that cannot be written, and what to say about it (the path follows).
UNWRITABLE = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EEXIST: "a file of that name is in the way of a directory",
}


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Imported when an error happens, so ``import slowthink.cli`` stays light."""
    from pydantic import ValidationError

    from slowthink.config import ConfigError
    from slowthink.data.problems import DataError
    from slowthink.durable import CheckpointError, LockedError, OutputPathError
    from slowthink.models.modeling import ModelLoadError
    from slowthink.report import ReportError
    from slowthink.rollout.vllm_backend import BackendUnavailableError

    return (
        ConfigError,
        DataError,
        ModelLoadError,
        ReportError,
        BackendUnavailableError,
        CheckpointError,
        LockedError,
        OutputPathError,
        ValidationError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
    )


def _environment_error_types() -> tuple[type[BaseException], ...]:
    from slowthink.rollout.openai_backend import OpenAIBackendError
    from slowthink.sandbox.launch import SandboxUnavailable

    return (OpenAIBackendError, SandboxUnavailable)


def exit_code_for(error: BaseException) -> int | None:
    """2 for a user's mistake, 1 for an environment failure, None for a bug (keep the traceback)."""
    from slowthink.durable import is_no_space

    if isinstance(error, _user_error_types()):
        return USER_ERROR
    # A full disk before the unwritable paths: ENOSPC's file is writable once there is room.
    if isinstance(error, _environment_error_types()) or is_no_space(error) or _lost_rank(error):
        return ENVIRONMENT_ERROR
    if _unwritable(error):
        return USER_ERROR
    return None


def _lost_rank(error: BaseException) -> bool:
    """A collective whose peer is gone: gloo's error when another rank's process (or node) died."""
    return isinstance(error, RuntimeError) and (LOST_PEER.search(str(error)) or SILENT_PEER.search(str(error))) is not None


def _unwritable(error: BaseException) -> bool:
    """A read-only or forbidden output path, or a file where a directory must be created."""
    return isinstance(error, OSError) and error.errno in UNWRITABLE and error.filename is not None


def message_for(error: BaseException) -> str:
    """The text after ``error:``; pydantic's errors and a full disk get readable forms."""
    from pydantic import ValidationError

    from slowthink.durable import is_no_space, no_space_message

    if isinstance(error, ValidationError):
        return "invalid options:\n  " + "\n  ".join(f"'{'.'.join(str(p) for p in item['loc'])}': {item['msg']}" for item in error.errors())
    if is_no_space(error) and not isinstance(error, _user_error_types()):
        if not isinstance(error, OSError):  # NoSpaceError names its path; torch's errors do not
            return str(error) if "no space left on" in str(error) else no_space_message("the output directory")
        return no_space_message(error.filename or "the output directory")
    if _lost_rank(error):
        resume = "restart every node with --resume to continue from the last checkpoint"
        if closed := LOST_PEER.search(str(error)):
            return f"lost contact with another rank ({closed.group(0)}): a process or node of this run stopped (its own log says why); {resume}"
        silent = SILENT_PEER.search(str(error)).group(0)
        return (
            f"no answer from another rank within distributed.timeout_minutes ({silent}): a node of this run stopped or was "
            f"cut off, or a rank worked longer than the timeout (then raise distributed.timeout_minutes); {resume}"
        )
    if _unwritable(error):
        return f"cannot write {error.filename}: {UNWRITABLE[error.errno]}; choose another output path"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)) and error.filename:
        return f"{error.strerror}: {error.filename}"
    return str(error)


def fail(message: str, code: int = USER_ERROR) -> None:
    """Print ``error: message`` on stderr and leave with ``code`` (default 2, a user's mistake)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a typer command: user errors and environment failures become a message and an exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - classified below; a bug is re-raised untouched
            code = exit_code_for(error)
            if code is None:
                raise
            fail(message_for(error), code)

    return run
