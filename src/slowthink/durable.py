"""Writes that survive a kill at any moment, and one owner per output directory.

Must not import torch, transformers, recipes or the CLI (tests/test_layers.py).

- ``atomic_write_bytes`` / ``atomic_write_text``: a temp file beside the target, fsynced,
  renamed over it, and the directory fsynced, so a reader (or a resume after SIGKILL or a
  power cut) sees the old content or the new one, never a truncated mix.
- ``fsync_tree``: fsync every file of a directory and the directory itself before it is
  renamed into place (checkpoints); ``follow_umask`` gives its files a plain write's mode.
- ``exclusive_lock``: an ``fcntl.flock`` on a lock file, taken without waiting; a second
  process on the same run directory or eval output fails at once with a message naming the
  holder's PID. The kernel drops the lock when its holder dies, so a killed run never
  leaves a stale lock behind.
- ``no_space_message``: "no space left on <path>" for an ``OSError`` of a full disk;
  ``NoSpaceError`` carries it where the original error does not say ENOSPC (torch's).
- ``check_output``: the one guard every command runs on its output paths: an output that is
  one of its inputs (the same path, a symlink, a hard link, another relative spelling) is
  refused before anything is written.

Files written atomically get the permissions a plain ``open(path, "w")`` would give them:
an existing file keeps its mode, a new one gets ``0o666`` minus the umask (``mkstemp``
alone gives ``0o600``). A symlinked target is written through (the file it points to is
replaced, the link stays) and a special file such as ``/dev/stdout`` or a FIFO is written
directly, since neither can be renamed over.

Imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class LockedError(RuntimeError):
    """Another live process holds the lock; the message names it and its PID."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used; the message names the file or directory.

    Defined here, not in ``training.checkpoint``, so the CLI can name it without importing torch.
    """


class NoSpaceError(RuntimeError):
    """A full disk under ``path``; its message is ``no_space_message(path)`` (exit 1, cli/errors.py).

    Raised where the original error does not say ENOSPC by itself, or names a temp file.
    """

    def __init__(self, path: str | Path):
        super().__init__(no_space_message(path))
        self.path = path


class OutputPathError(ValueError):
    """An output path that would overwrite one of the command's inputs; the message names both."""


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_write_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave: the file's own, else 0o666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def follow_umask(directory: str | Path) -> None:
    """Give every file under ``directory`` the mode a plain write would (a library that writes
    through its own temp file, as safetensors does, leaves 0600)."""
    mode = 0o666 & ~_umask()
    for root, _subdirs, files in os.walk(directory):
        for name in files:
            os.chmod(os.path.join(root, name), mode)


def _is_special(path: Path) -> bool:
    """An existing target that is not a regular file or directory (a character device, a FIFO, a socket)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextmanager
def atomic_writer(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Write ``path`` through a temp file beside it: renamed over ``path`` (fsynced) only if the
    block ends without an exception, else removed, so ``path`` is never half-written.

    A symlink is written through (its target is replaced; the link stays), and a special file
    (``/dev/stdout``, a FIFO) is written directly: neither can be renamed over.
    """
    path = Path(path)
    if _is_special(path):
        with open(path, mode, encoding=encoding) as handle:
            yield handle
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    permissions = _plain_write_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only or full directory: name the path asked for, not a temp name
        raise _naming(exc, path) from exc
    try:
        os.fchmod(fd, permissions)
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:  # e.g. ``path`` is a directory
            raise _naming(exc, path) from exc
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise NoSpaceError(path.parent) from exc
        raise
    fsync_dir(path.parent)


def _naming(error: OSError, path: Path) -> OSError:
    """The same error (same errno, so the same subclass) about ``path``."""
    return OSError(error.errno, error.strerror, str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file + fsync + rename + directory fsync."""
    with atomic_writer(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(directory: str | Path) -> None:
    """fsync every regular file under ``directory``, then each directory (deepest first)."""
    directory = Path(directory)
    dirs = []
    for root, _subdirs, files in os.walk(directory):
        dirs.append(root)
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for root in reversed(dirs):
        fsync_dir(root)


def is_no_space(error: BaseException | None) -> bool:
    """True for a full disk (ENOSPC / EDQUOT), also when torch wraps it in a RuntimeError.

    torch's zip writer reports a failed write of a Python file object as "unexpected pos"
    and keeps the ``OSError`` only as the exception's context, so the chain is followed.
    """
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, NoSpaceError):
            return True
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "basic_ios::clear" in text or "file write failed" in text:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def no_space_message(path: str | Path) -> str:
    return f"no space left on {path}: free some space (or choose another directory) and run again"


def same_file(a: str | Path, b: str | Path) -> bool:
    """``a`` and ``b`` name one file or directory: any path spelling, symlink or hard link
    (same device and inode); where one does not exist yet, the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        pass
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def check_output(out: str | Path, inputs: Iterable[str | Path | None], option: str = "--out") -> None:
    """Refuse an output path that is one of ``inputs``, before anything is written.

    Writing it would destroy the input it is computed from (``curate POOL --out POOL`` lost
    rows and exited 0). An input that is not a path (``hf:NAME``) never matches.
    """
    for source in inputs:
        if source is not None and same_file(out, source):
            raise OutputPathError(
                f"{option} {out} is the input file {source} (the same file, or a link to it): writing it would destroy the input; choose another path"
            )


@contextmanager
def exclusive_lock(lock_path: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``lock_path`` for the ``with`` block.

    ``what`` says what is locked ("run directory runs/x"); the error names it and the PID
    written by the holder. The lock file stays (its content is the holder's PID); only the
    lock itself matters, and the kernel releases it when the holder exits or dies.
    """
    import fcntl

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        except OSError:
            holder = "unknown"
        os.close(fd)
        raise LockedError(f"{what} is in use by another process (PID {holder}); wait for it to finish or choose another path") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
