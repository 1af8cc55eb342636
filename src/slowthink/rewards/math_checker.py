"""``MathChecker``: math-verify equivalence in a pool of worker processes with hard deadlines.

Why a pool: math-verify hangs on hostile answers (``9^{9^{9}}``, ``(10^{10})!``, deep
nesting), its timeout is ``signal.alarm`` (main thread only), and some of the C-level work
ignores the alarm altogether. So every parse/verify runs in a worker process's main
thread; the worker arms its own alarm at ``timeout_s`` (cheap: the worker survives), and
the parent kills a worker still busy at ``timeout_s + KILL_GRACE_S`` and starts a
replacement (the guarantee). A timeout is a status, never an exception in the caller.

Workers come from a forkserver that has already imported math-verify, so a replacement
costs a fork, not a fresh interpreter. Checks of the same gold go to the same worker
where possible, and each worker caches parsed golds: with n rollouts per prompt a gold is
parsed about once per batch, not n times.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from slowthink.rewards.verdict import Verdict

# Seconds between the worker's own alarm and the parent's kill.
KILL_GRACE_S = 0.5
# Responses are cut to their last MAX_CHECK_CHARS before they go to a worker (a bound on
# pipe traffic and worker memory). Extraction reads far less (extract.MAX_SCAN_CHARS), but
# the worker must see where a huge boxed answer opens to call it an answer (and wrong).
MAX_CHECK_CHARS = 8_000_000
# A worker that has not said "ready" after this many seconds is broken (imports hung).
START_TIMEOUT_S = 60.0
_PRELOAD = ["math_verify", "slowthink.rewards.equivalence"]


class _SoftTimeout(BaseException):
    """Raised by the worker's alarm; a BaseException so sympy's ``except Exception`` cannot eat it."""


def _limit_worker(memory_mb: int) -> None:
    """One thread per worker (the cores are shared with torch), and a memory ceiling."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _worker_main(conn: Connection, timeout_s: float, fallback: bool, memory_mb: int) -> None:
    """Worker loop: receive (task id, gold, response), send (task id, status, extracted, detail)."""
    from slowthink.rewards import equivalence

    # Ctrl-C reaches the whole process group; the parent decides what happens to workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_worker(memory_mb)
    equivalence.install()
    golds = equivalence.GoldCache()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _SoftTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        task_id, gold, response = message
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            result = equivalence.judge(gold, response, golds, fallback)
            signal.setitimer(signal.ITIMER_REAL, 0)
            reply = (task_id, result.status, result.extracted, result.detail)
        except _SoftTimeout:
            reply = (task_id, "timeout", None, f"check took longer than {timeout_s:g}s (worker alarm)")
        except Exception as error:  # noqa: BLE001 - reported as the check's "error" status, with its cause
            signal.setitimer(signal.ITIMER_REAL, 0)
            reply = (task_id, "error", None, f"{type(error).__name__}: {str(error)[:200]}")
        conn.send(reply)


@dataclass
class _Worker:
    process: Any
    conn: Connection
    born: float
    ready: bool = False
    task: int | None = None
    gold: str | None = None  # the gold of its current/last task (dispatch affinity)
    started: float = 0.0


@dataclass
class _Batch:
    """One ``check`` call: per-gold queues of pending indices, and the verdicts so far."""

    golds: Sequence[str]
    responses: Sequence[str]
    queues: dict[str, deque[int]] = field(default_factory=dict)
    verdicts: list[Verdict | None] = field(default_factory=list)

    def next_for(self, worker: _Worker, claimed: set[str]) -> int | None:
        """Prefer the worker's own gold (cached there), then a gold no other worker is on."""
        gold = worker.gold if worker.gold in self.queues else None
        if gold is None:
            gold = next((g for g in self.queues if g not in claimed), None) or next(iter(self.queues), None)
        if gold is None:
            return None
        queue = self.queues[gold]
        index = queue.popleft()
        if not queue:
            del self.queues[gold]
        return index


class MathChecker:
    """The ``Checker`` for math answers: ``check(golds, responses) -> list[Verdict]``.

    ``workers`` processes (default 2: the machine's cores are shared with torch, whose
    threads should be sized together with this), ``timeout_s`` per check. ``fallback``
    also accepts unboxed answers ("the answer is X", last math, last number): for
    evaluation only, never for rewards. ``memory_mb`` caps each worker's address space.
    """

    def __init__(self, workers: int = 2, timeout_s: float = 5.0, fallback: bool = False, memory_mb: int = 2048):
        if workers < 1:
            raise ValueError(f"MathChecker needs at least 1 worker (got workers={workers})")
        if timeout_s <= 0:
            raise ValueError(f"MathChecker timeout_s must be > 0 (got {timeout_s})")
        self.timeout_s = float(timeout_s)
        self.fallback = fallback
        self.memory_mb = memory_mb
        # Workers killed at the deadline and replaced (a metric worth logging).
        self.restarts = 0
        self._context = self._make_context()
        self._workers: list[_Worker] | None = [self._start_worker() for _ in range(workers)]

    @staticmethod
    def _make_context() -> Any:
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            return context
        return multiprocessing.get_context("spawn")

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_conn, self.timeout_s, self.fallback, self.memory_mb),
            name="slowthink-math-checker",
            daemon=True,
        )
        process.start()
        child_conn.close()
        return _Worker(process=process, conn=parent_conn, born=time.monotonic())

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` (stuck or dead) and put a fresh one in its place."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        self._workers[self._workers.index(worker)] = self._start_worker()

    def check(self, golds: Sequence[str], responses: Sequence[str]) -> list[Verdict]:
        """One verdict per (gold, response) pair, in order; never raises for a bad response."""
        if len(golds) != len(responses):
            raise ValueError(f"check() got {len(golds)} golds but {len(responses)} responses")
        if self._workers is None:
            raise RuntimeError("MathChecker.check() called after close()")
        for worker in list(self._workers):
            # Still busy from a check() that was interrupted (Ctrl-C): its reply would land
            # in this batch under a stale index, so the worker goes.
            if worker.task is not None:
                self._replace(worker)
        batch = _Batch(golds, responses, verdicts=[None] * len(golds))
        for index, gold in enumerate(golds):
            batch.queues.setdefault(gold, deque()).append(index)
        while batch.queues or any(w.task is not None for w in self._workers):
            self._dispatch(batch)
            self._collect(batch)
            self._enforce_deadlines(batch)
        return [v if v is not None else Verdict("error", detail="lost check") for v in batch.verdicts]

    def _dispatch(self, batch: _Batch) -> None:
        claimed = {w.gold for w in self._workers if w.task is not None and w.gold is not None}
        for worker in list(self._workers):
            if not worker.ready or worker.task is not None or not batch.queues:
                continue
            index = batch.next_for(worker, claimed)
            if index is None:
                return
            gold = batch.golds[index]
            try:
                worker.conn.send((index, gold, batch.responses[index][-MAX_CHECK_CHARS:]))
            except (BrokenPipeError, ConnectionResetError, OSError):
                batch.queues.setdefault(gold, deque()).appendleft(index)
                self._replace(worker)
                continue
            worker.task, worker.gold, worker.started = index, gold, time.monotonic()
            claimed.add(gold)

    def _next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = [w.started + self.timeout_s + KILL_GRACE_S for w in self._workers if w.task is not None]
        deadlines += [w.born + START_TIMEOUT_S for w in self._workers if not w.ready]
        return max(0.0, min(deadlines) - now) if deadlines else 0.0

    def _collect(self, batch: _Batch) -> None:
        """Wait for replies (at most until the nearest deadline) and record them."""
        waiting = {w.conn: w for w in self._workers if w.task is not None or not w.ready}
        if not waiting:
            return
        for conn in wait(list(waiting), timeout=self._next_deadline()):
            worker = waiting[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._worker_died(worker, batch)
                continue
            if message[0] == "ready":
                worker.ready = True
                continue
            index, status, extracted, detail = message
            batch.verdicts[index] = Verdict(status, extracted, detail)
            worker.task = None

    def _worker_died(self, worker: _Worker, batch: _Batch) -> None:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        if worker.task is not None:
            detail = f"checker worker died (exit code {code}) on this response"
            batch.verdicts[worker.task] = Verdict("error", detail=detail)
        elif not worker.ready:
            raise RuntimeError(
                f"math checker worker failed to start (exit code {code}; its traceback is above). Workers are "
                "started by forkserver/spawn, which re-imports your main script: keep a script's top-level "
                "code under `if __name__ == '__main__':`. Also check that math-verify is installed."
            )
        self._replace(worker)

    def _enforce_deadlines(self, batch: _Batch) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.task is not None and now >= worker.started + self.timeout_s + KILL_GRACE_S:
                detail = f"check took longer than {self.timeout_s:g}s; worker killed and replaced"
                batch.verdicts[worker.task] = Verdict("timeout", detail=detail)
                self.restarts += 1
                self._replace(worker)
            elif not worker.ready and now >= worker.born + START_TIMEOUT_S:
                raise RuntimeError(f"math checker worker did not start within {START_TIMEOUT_S:g}s")

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring; they change when one is replaced)."""
        return [w.process.pid for w in self._workers or []]

    def close(self) -> None:
        """Stop the workers (politely, then by force). Safe to call twice."""
        if self._workers is None:
            return
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._workers:
            worker.process.join(timeout=1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            worker.conn.close()
        self._workers = None

    def __enter__(self) -> MathChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
