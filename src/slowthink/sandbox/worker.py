"""The warm worker: runs inside bubblewrap (or the fallback), forks one child per cell.

Started as ``python -I -B -m slowthink.sandbox.worker CONFIG_JSON``. It imports the
preload modules once, so a forked cell gets ``sympy`` for free (docs/design.md, "The sandbox",
measured a fresh ``python -c`` at 32 ms, 320 ms with sympy). The next cell's child is forked,
limited and filtered while the caller is busy elsewhere (the "spare"), so a cell's
round trip is a pipe write, the code, and a pipe read. Requests and
replies are JSON lines on the worker's original stdin/stdout, which no cell can reach:
every child closes all inherited descriptors before running code.

The worker enforces the wall deadline (it kills the child's process group), caps the
captured output, and maps how the child ended to one status. Standard library plus
``pyseccomp`` only.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections import OrderedDict
from typing import Any

from slowthink.sandbox.capture import Capture, collect, truncate
from slowthink.sandbox.cell import EXIT_ERROR, EXIT_MEMORY, EXIT_OK, exit_now, install_std_streams, new_namespace, run_cell
from slowthink.sandbox.policy import CellLimits, build_filter, drop_root, restrict_child
from slowthink.sandbox.scratch import empty_scratch

EXIT_SETUP = 87  # the child could not even set itself up: reported as "crashed" with its traceback
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
SESSION_RESET_NOTE = "\n[sandbox: the session was reset; its variables are lost]\n"


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when our parent dies (no orphaned workers or cells)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def make_undumpable() -> None:
    """Cells run as the worker's uid; without this, a cell could open the unfiltered
    worker's /proc/<pid>/mem and rewrite it. Non-dumpable processes need CAP_SYS_PTRACE
    for that, which no cell has. Forked children inherit the flag."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def place_fds(mapping: dict[int, int]) -> None:
    """Make ``target_fd = source_fd`` for each pair, then close every other descriptor."""
    import fcntl

    # Move sources out of the way first, so that a source equal to another target survives.
    high = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 64) for target, source in mapping.items()}
    for target, source in high.items():
        os.dup2(source, target)
    os.closerange(len(mapping), os.sysconf("SC_OPEN_MAX"))


class Worker:
    """Runs cells one at a time; holds the live sessions and one spare child.

    Every cell runs in a child that was forked, limited and seccomp-filtered *before*
    the request arrived (the spare), and that reports "done" on a pipe instead of
    exiting: fork, filter set-up and the child's teardown all happen between requests,
    off the caller's clock. A stateless cell uses the spare once and the worker kills it
    after replying; a session keeps its child.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.limits = CellLimits(**cfg["limits"])
        self.program = build_filter(self.limits.block_writes)
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.spare: Session | None = None
        self.retired: list[Session] = []
        self.dying: list[Session] = []
        self.scratch_used = False  # a cell ran since /tmp and /dev/shm were last emptied

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "close":
            session = self.sessions.pop(request["session"], None)
            if session is not None:
                self.retired.append(session)
            return {"closed": True}
        session_id = request.get("session") if self.cfg["mode"] == "session" else None
        self.scratch_used = True
        if session_id is None:
            child = self._fresh_child()
            reply, _ = self.run_cell(child, request["code"])
            self.retired.append(child)
            return reply
        return self.run_in_session(session_id, request["code"])

    def after_reply(self) -> None:
        """Between requests: get the next spare ready, then kill used children.

        Reaping waits for nothing: a killed child's memory is torn down in its own
        context, so it is collected on a later call (``reap(block=False)``)."""
        if self.spare is None:
            self.spare = Session.start(self.limits, self.program)
        for child in self.retired:
            child.signal_kill()
        self.dying += self.retired
        self.retired = []
        self.dying = [child for child in self.dying if child.reap(block=False) is None]
        if self.scratch_used and not self.sessions:
            self.empty_scratch()

    def empty_scratch(self) -> None:
        """Empty /tmp and /dev/shm once no cell that wrote there can run: a stateless cell's
        files are never seen by the next one, and their memory goes back to the host. While
        sessions live they share the scratch space (a session keeps its files)."""
        for child in self.dying:
            child.reap(block=True)  # a killed cell's threads may be in a write until they are gone
        self.dying = []
        left = empty_scratch(self.cfg.get("scratch", []))
        if left:
            print(f"[sandbox worker] could not remove {len(left)} entries, e.g. {left[0]}", file=sys.stderr, flush=True)
        self.scratch_used = False

    def _fresh_child(self) -> Session:
        child, self.spare = self.spare, None
        return child if child is not None and child.alive() else Session.start(self.limits, self.program)

    def run_in_session(self, session_id: str, code: str) -> dict[str, Any]:
        session = self.sessions.pop(session_id, None) or self._fresh_child()
        self.sessions[session_id] = session  # most recently used last
        while len(self.sessions) > self.cfg["max_sessions"]:
            _, oldest = self.sessions.popitem(last=False)
            self.retired.append(oldest)
        reply, alive = self.run_cell(session, code)
        if not alive:
            del self.sessions[session_id]
            reply["stderr"] += SESSION_RESET_NOTE
        return reply

    def run_cell(self, child: Session, code: str) -> tuple[dict[str, Any], bool]:
        """Run one cell in ``child``; returns the reply and whether the child still lives."""
        start = time.monotonic()
        child.send(code, self.limits.cpu_s)
        capture = collect(
            child.pid,
            child.out_r,
            child.err_r,
            child.ctl_r,
            start + self.cfg["timeout_s"],
            self.cfg["max_output_bytes"],
            pidfd=child.pidfd,
        )
        if capture.done_byte is not None and capture.reason is None:
            status = {EXIT_OK: "ok", EXIT_MEMORY: "memory"}.get(capture.done_byte, "error")
            return self.reply(status, capture, time.monotonic() - start), True
        wait_status, cpu = child.kill()
        status = self.status_of(capture.reason, wait_status, cpu)
        if capture.reason is None and os.WIFSIGNALED(wait_status):
            capture.exit_note = f"\n[sandbox: the cell died on {signal.Signals(os.WTERMSIG(wait_status)).name}]\n"
        return self.reply(status, capture, time.monotonic() - start), False

    def status_of(self, reason: str | None, wait_status: int, cpu_s: float) -> str:
        """Map how a child ended to a status (see ``base.CellStatus``)."""
        if reason is not None:
            return reason
        if os.WIFEXITED(wait_status):
            code = os.WEXITSTATUS(wait_status)
            return {EXIT_OK: "ok", EXIT_MEMORY: "memory", EXIT_SETUP: "crashed"}.get(code, "error")
        sig = os.WTERMSIG(wait_status)
        if sig == signal.SIGXCPU:
            return "timeout"
        # A SIGKILL the worker did not send: the kernel's OOM killer.
        return "memory" if sig == signal.SIGKILL else "crashed"

    def reply(self, status: str, capture: Capture, wall_s: float) -> dict[str, Any]:
        limit = self.cfg["max_output_chars"]
        stdout, cut_out = truncate(capture.stdout.decode("utf-8", "replace"), limit)
        raw_err = capture.stderr.decode("utf-8", "replace")
        stderr, cut_err = truncate(raw_err, limit)
        if capture.exit_note:
            stderr += capture.exit_note
        error = None
        if status == "error":
            lines = [line for line in raw_err.splitlines() if line.strip()]
            error = lines[-1].strip() if lines else "the cell exited with a non-zero status"
        return {"status": status, "stdout": stdout, "stderr": stderr, "wall_s": round(wall_s, 6), "error": error, "truncated": cut_out or cut_err}

    def close_all(self) -> None:
        children = [*self.sessions.values(), *self.retired, *self.dying] + ([self.spare] if self.spare else [])
        for child in children:
            child.kill()
        self.sessions.clear()


class Session:
    """A live, limited child that runs the cells it is sent in one namespace."""

    def __init__(self, pid: int, cmd_w: int, out_r: int, err_r: int, ctl_r: int) -> None:
        self.pid, self.cmd_w, self.out_r, self.err_r, self.ctl_r = pid, cmd_w, out_r, err_r, ctl_r
        self.pidfd = os.pidfd_open(pid)
        self.ended: tuple[int, float] | None = None

    @classmethod
    def start(cls, limits: CellLimits, program: bytes) -> Session:
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _session_child(limits, program, cmd_r, out_w, err_w, ctl_w)
        for fd in (cmd_r, out_w, err_w, ctl_w):
            os.close(fd)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        return cls(pid, cmd_w, out_r, err_r, ctl_r)

    def send(self, code: str, cpu_s: int) -> None:
        """Give the child ``cpu_s`` more CPU-seconds, then hand it the cell."""
        import resource

        with open(f"/proc/{self.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        resource.prlimit(self.pid, resource.RLIMIT_CPU, (int(used) + 1 + cpu_s, resource.RLIM_INFINITY))
        data = code.encode("utf-8", "surrogatepass")
        try:
            os.write(self.cmd_w, len(data).to_bytes(8, "little") + data)
        except BrokenPipeError:
            pass  # the child is gone; collect() sees it exit

    def alive(self) -> bool:
        """Still running (its pidfd turns readable at exit; this does not reap it)."""
        return self.ended is None and not select.select([self.pidfd], [], [], 0)[0]

    def signal_kill(self) -> None:
        """SIGKILL the child and its process group; reaping comes later (``reap``)."""
        if self.ended is None:
            kill_group(self.pid)

    def reap(self, block: bool = True) -> tuple[int, float] | None:
        """Collect the exited child once: its wait status and CPU seconds (None: still running)."""
        if self.ended is None:
            pid, wait_status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return None
            self.ended = (wait_status, usage.ru_utime + usage.ru_stime)
            for fd in (self.cmd_w, self.out_r, self.err_r, self.ctl_r, self.pidfd):
                os.close(fd)
        return self.ended

    def kill(self) -> tuple[int, float]:
        """Kill the child and wait for it; returns its wait status and CPU seconds."""
        self.signal_kill()
        ended = self.reap(block=True)
        assert ended is not None
        return ended


def _session_child(limits: CellLimits, program: bytes, cmd_r: int, out_w: int, err_w: int, ctl_w: int) -> None:
    """In a session's child: run cells read from fd 3, report each status on fd 4. Never returns."""
    try:
        os.setsid()
        die_with_parent()
        devnull = os.open(os.devnull, os.O_RDONLY)
        place_fds({0: devnull, 1: out_w, 2: err_w, 3: cmd_r, 4: ctl_w})
        restrict_child(limits, program)
        stdout = install_std_streams()
    except BaseException:  # noqa: BLE001 - reported through stderr and EXIT_SETUP
        os.write(2, traceback.format_exc().encode())
        os._exit(EXIT_SETUP)
    namespace = new_namespace()
    while True:
        header = _read_exactly(3, 8)
        if len(header) < 8:
            exit_now(EXIT_OK)
        try:
            code = _read_exactly(3, int.from_bytes(header, "little")).decode("utf-8", "surrogatepass")
            status = run_cell(code, namespace, stdout)
        except MemoryError:
            # The cell did not fit in the address-space limit before it could run; report
            # that alone, never this loop's frames (run_cell reports the cell's own errors).
            os.write(2, b"MemoryError: the cell does not fit in the sandbox's memory limit\n")
            status = EXIT_MEMORY
        try:
            os.write(4, bytes([status]))
        except OSError:
            exit_now(EXIT_ERROR)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def kill_group(pid: int) -> None:
    """SIGKILL the child's process group (it called setsid) and the child itself."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Run once after importing sympy: its solvers import submodules and build tables on first
# use, which every forked cell would otherwise redo (measured: ~60 ms per sympy cell).
SYMPY_WARM_UP = """
x, y = sympy.symbols('x y')
sympy.solve(x**2 - 4, x)
sympy.solve([x + y - 3, x - y - 1], [x, y])
sympy.simplify(sympy.sin(x)**2 + sympy.cos(x)**2)
sympy.factor(x**2 - 1), sympy.expand((x + 1)**3), sympy.factorint(360), sympy.nsimplify(0.5)
sympy.integrate(x**2, x), sympy.diff(sympy.exp(x), x), sympy.Rational(1, 3) + 1, sympy.sqrt(8)
sympy.core.cache.clear_cache()  # keep the imports and tables, not these results
"""


def preload(names: list[str]) -> dict[str, str]:
    """Import the warm-up modules; a missing one is reported, not fatal."""
    failed = {}
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            failed[name] = str(exc)
            continue
        if name == "sympy":
            exec(SYMPY_WARM_UP, {"sympy": module})
    # Objects that exist now are never collected again: a child's garbage collector
    # would otherwise walk (and so copy-on-write fault) every page of them.
    gc.collect()
    gc.freeze()
    return failed


def main() -> None:
    cfg = json.loads(sys.argv[1])
    die_with_parent()
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    # Stray prints (ours or a library's) must never corrupt the reply channel.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    failed = preload(cfg["preload"])
    make_undumpable()
    if cfg["drop_root"]:
        drop_root()
    worker = Worker(cfg)
    worker.after_reply()
    _send(replies, {"ready": True, "pid": os.getpid(), "preload_failed": failed})
    for line in requests:
        request = json.loads(line)
        if request["op"] == "exit":
            break
        _send(replies, worker.handle(request))
        worker.after_reply()
    worker.close_all()


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


if __name__ == "__main__":
    main()
