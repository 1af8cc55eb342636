"""Progress on a terminal, one helper for every command: nothing but plain lines elsewhere.

- ``count_bar(console, enabled, name, total)``: a context manager yielding ``advance(k)``;
  a rich bar of done/total on a terminal, a no-op otherwise (eval, distill-tir, score).
- ``StepProgress``: training steps with chosen metrics; a live rich bar on a TTY, one plain
  line every 2 s otherwise (CI logs, files) (rl, sft).
- ``PhaseTimer``: seconds per phase of an RL step, and generation throughput (logged as ``time/*``).

Must not import torch or the CLI (tests/test_layers.py): rich is imported only when a bar is shown.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def count_bar(console: Any, enabled: bool, name: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar of ``total`` items on a terminal; elsewhere a no-op (logs stay clean)."""
    if not (enabled and console.is_terminal and total):
        yield lambda k: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(name, total=total)
        yield lambda k: progress.advance(task, k)


class StepProgress:
    """A live progress bar with chosen metrics on a TTY; plain lines otherwise."""

    def __init__(self, description: str, total: int, start: int = 0, keys: tuple[str, ...] = (), enabled: bool = True):
        self.keys, self.total, self.enabled = keys, total, enabled
        self.tty = sys.stderr.isatty()
        self._progress = None
        self._last_print = 0.0
        self.description = description
        if enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, completed=start, info="")

    def _summary(self, metrics: dict[str, float]) -> str:
        parts = [f"{k}={metrics[k]:.3g}" for k in self.keys if k in metrics and metrics[k] is not None]
        return " ".join(parts)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=self._summary(metrics))
        elif time.monotonic() - self._last_print > 2.0 or step == self.total:
            self._last_print = time.monotonic()
            print(f"[{self.description}] step {step}/{self.total} {self._summary(metrics)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class PhaseTimer:
    """Seconds spent per phase of a step, and generation throughput."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def __call__(self, name: str) -> PhaseTimer:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = time.perf_counter() - self._t0

    def metrics(self, generated_tokens: int) -> dict[str, float]:
        out = {f"time/{k}_s": v for k, v in self.seconds.items()}
        out["time/step_s"] = time.perf_counter() - self.start
        out["tokens_per_s"] = generated_tokens / max(self.seconds.get("generate", 0.0), 1e-9)
        return out
