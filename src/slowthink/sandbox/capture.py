"""Collecting one cell's output under a wall deadline and a byte cap (worker side).

One ``select`` loop watches the child's stdout and stderr pipes, its pidfd (readable
when it exits) and, for a session, the pipe on which it reports "cell done". The loop
never blocks past the deadline, so a cell that closes its pipes and sleeps, or prints
forever, still ends on time. Standard library only.
"""

from __future__ import annotations

import os
import selectors
import time
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class Capture:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    # None: the child finished by itself; "timeout" / "output_limit": the worker must kill it.
    reason: str | None = None
    # The status byte a session child sent when its cell finished.
    done_byte: int | None = None
    exited: bool = False
    # A line for stderr that says why the worker stopped the cell.
    exit_note: str = ""
    total_bytes: int = 0


def collect(pid: int, out_r: int, err_r: int, ctl_r: int | None, deadline: float, max_bytes: int, pidfd: int | None = None) -> Capture:
    """Read until the cell is over (exit, or the session's done byte), the deadline, or the cap."""
    own_pidfd = pidfd is None
    pidfd = os.pidfd_open(pid) if pidfd is None else pidfd
    cap = Capture()
    streams = {out_r: cap.stdout, err_r: cap.stderr}
    with selectors.DefaultSelector() as sel:
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(pidfd, selectors.EVENT_READ)
        if ctl_r is not None:
            sel.register(ctl_r, selectors.EVENT_READ)
        open_streams = set(streams)
        while not _over(cap, open_streams, ctl_r):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cap.reason = "timeout"
                cap.exit_note = "\n[sandbox: stopped at the wall-clock limit]\n"
                break
            for key, _ in sel.select(remaining):
                fd = key.fd
                if fd == pidfd:
                    cap.exited = True
                    sel.unregister(pidfd)
                elif fd == ctl_r:
                    byte = os.read(ctl_r, 1)
                    # An empty read: the cell closed its report pipe; wait for its exit instead.
                    cap.done_byte = byte[0] if byte else None
                    sel.unregister(ctl_r)
                elif not _read_into(fd, streams[fd], cap, max_bytes):
                    sel.unregister(fd)
                    open_streams.discard(fd)
                if cap.reason is not None:
                    break
            if cap.reason is not None:
                break
        if cap.reason is None:
            # Whatever is still buffered in the pipes (a session's last writes).
            for fd in list(open_streams):
                while cap.reason is None and _read_into(fd, streams[fd], cap, max_bytes):
                    pass
    if own_pidfd:
        os.close(pidfd)
    return cap


def _over(cap: Capture, open_streams: set[int], ctl_r: int | None) -> bool:
    if ctl_r is not None:
        return cap.done_byte is not None or cap.exited
    return cap.exited and not open_streams


def _read_into(fd: int, buffer: bytearray, cap: Capture, max_bytes: int) -> bool:
    """Read one chunk; False at end of file (or, on a non-blocking pipe, when it is empty)."""
    try:
        chunk = os.read(fd, CHUNK)
    except BlockingIOError:
        return False
    if not chunk:
        return False
    cap.total_bytes += len(chunk)
    room = max_bytes - (len(cap.stdout) + len(cap.stderr))
    buffer += chunk[: max(room, 0)]
    if cap.total_bytes > max_bytes:
        cap.reason = "output_limit"
        cap.exit_note = f"\n[sandbox: stopped after more than {max_bytes} bytes of output]\n"
    return True


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Keep the first and last ``limit // 2`` characters, with a marker that says how much was cut."""
    if len(text) <= limit:
        return text, False
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n...[{len(text) - limit} characters cut]...\n{text[-tail:]}", True
