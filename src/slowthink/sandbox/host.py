"""``ProcessSandbox``: the host side of the sandbox (the ``Sandbox`` implementation).

It starts the warm worker (bubblewrap or fallback), sends one cell at a time and waits
for the reply with its own backstop deadline (the worker's deadline plus a grace
period). If the worker dies or overruns, the host kills the worker's whole process
group (under bubblewrap that tears down its PID namespace, every cell with it) and
starts a new one on the next call. The host also caps how much it reads from the
worker, so nothing a cell does can make the calling process block or balloon.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from slowthink.sandbox.base import CELL_STATUSES, CellResult
from slowthink.sandbox.config import SandboxConfig
from slowthink.sandbox.launch import WORKER_ENV, SandboxUnavailable, resolve_backend, worker_command

# Time the worker gets beyond a cell's deadline to kill it and reply (a busy machine).
GRACE_S = 5.0
REPLY_FIELDS = {"status", "stdout", "stderr", "wall_s", "error", "truncated"}


class ProcessSandbox:
    """Runs cells in a warm, isolated worker. Thread-safe (one cell at a time)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.backend = resolve_backend(self.config.backend)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._stderr: Any = None
        self.worker_starts = 0
        self._start()

    # -- the Sandbox protocol -------------------------------------------------------
    def run(self, code: str, session: str | None = None) -> CellResult:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            start = time.monotonic()
            budget = self.config.timeout_s + GRACE_S
            reply = self._request({"op": "run", "code": code, "session": session}, budget)
            wall = time.monotonic() - start
            if reply is None or set(reply) != REPLY_FIELDS or reply["status"] not in CELL_STATUSES:
                return self._worker_failure(wall, overran=reply is None and wall >= budget)
            return CellResult(backend=self.backend, **reply)

    def close_session(self, session: str) -> None:
        if self.config.mode != "session":
            return
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                if self._request({"op": "close", "session": session}, GRACE_S) is None:
                    self._kill_worker()

    def close(self) -> None:
        with self._lock:
            self._kill_worker()

    def __enter__(self) -> ProcessSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self._kill_worker()

    @property
    def worker_pid(self) -> int | None:
        """The host-side pid of the worker (bubblewrap's, under bwrap); None when stopped."""
        return self._proc.pid if self._proc is not None else None

    # -- the worker -----------------------------------------------------------------
    def _start(self) -> None:
        self._kill_worker()
        self._stderr = tempfile.TemporaryFile()
        self._buffer = bytearray()
        self._proc = subprocess.Popen(
            worker_command(self.config, self.backend),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=WORKER_ENV,
            start_new_session=True,
            close_fds=True,
            cwd=tempfile.gettempdir(),
        )
        self.worker_starts += 1
        ready = self._read_message(self.config.startup_timeout_s)
        if ready is None or not ready.get("ready"):
            detail = self._stderr_tail()
            self._kill_worker()
            raise SandboxUnavailable(f"the sandbox worker ({self.backend}) did not start: {detail}")
        self.preload_failed: dict[str, str] = ready.get("preload_failed", {})

    def _request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """Send one request and wait for its reply; None if the worker died or overran."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(message) + "\n").encode("utf-8", "surrogatepass"))
            self._proc.stdin.flush()
        except BrokenPipeError:
            return None
        return self._read_message(timeout_s)

    def _read_message(self, timeout_s: float) -> dict[str, Any] | None:
        """One JSON line from the worker within ``timeout_s``, at most a bounded size."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        # Two truncated streams plus JSON escaping (up to 6 bytes per character) and slack.
        max_bytes = 12 * 2 * (self.config.max_output_chars + 200) + 65536
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or len(self._buffer) > max_bytes or not sel.select(remaining):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError:
            return None  # not our worker's JSON: treated as a dead worker
        return message if isinstance(message, dict) else None

    def _worker_failure(self, wall_s: float, overran: bool) -> CellResult:
        """The worker died or overran: kill it (and every cell), report, restart next time."""
        self._kill_worker()
        detail = self._stderr_tail()
        if overran:
            return CellResult("timeout", "", "[sandbox: the worker overran the deadline and was restarted]\n", wall_s, backend=self.backend)
        return CellResult("crashed", "", f"[sandbox: the worker died and was restarted] {detail}\n", wall_s, backend=self.backend)

    def _kill_worker(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 2000))
        return self._stderr.read().decode("utf-8", "replace").strip()
