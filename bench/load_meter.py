"""Other processes' CPU use during a timed region, and "repeat while contaminated".

The machines these benchmarks run on are shared: another process busy on the same cores
slows a step by up to 15x. Every timed region records how many cores *other* processes
kept busy meanwhile (all CPUs' busy time minus this process tree's, from /proc), and a
region run with more than ``threshold`` other cores busy is repeated, up to ``tries``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cpu_usage import busy_jiffies, tree_jiffies

HZ = os.sysconf("SC_CLK_TCK")
# Other processes' cores above which a timed region is called contaminated.
THRESHOLD = 0.2


@dataclass
class Timed:
    seconds: float
    other_cores: float  # mean cores other processes kept busy during the region
    value: Any = None
    tries: int = 1

    @property
    def clean(self) -> bool:
        return self.other_cores <= THRESHOLD


class LoadMeter:
    """``with LoadMeter() as m: ...`` then ``m.seconds``, ``m.other_cores``."""

    def __init__(self, root: int | None = None):
        self.root = root or os.getpid()

    def __enter__(self) -> LoadMeter:
        self._busy, self._own, self._t0 = busy_jiffies(), tree_jiffies(self.root), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        others = (busy_jiffies() - self._busy) - (tree_jiffies(self.root) - self._own)
        self.other_cores = max(others, 0) / HZ / max(self.seconds, 1e-9)


def timed(fn: Callable[[], Any], tries: int = 3, threshold: float = THRESHOLD) -> Timed:
    """Run ``fn`` until one run is clean (at most ``tries`` runs); return the least contaminated."""
    best: Timed | None = None
    for attempt in range(1, tries + 1):
        with LoadMeter() as meter:
            value = fn()
        result = Timed(meter.seconds, meter.other_cores, value, attempt)
        if best is None or result.other_cores < best.other_cores:
            best = result
        if result.other_cores <= threshold:
            break
    best.tries = attempt
    return best


def machine_note(results: list[Timed]) -> str:
    """One line about the load: how many regions were clean and the worst contamination."""
    clean = sum(r.clean for r in results)
    worst = max((r.other_cores for r in results), default=0.0)
    load = os.getloadavg()[0]
    flag = "" if clean == len(results) else " CONTAMINATED"
    return (
        f"{clean}/{len(results)} timed regions clean (other processes <= {THRESHOLD} cores); "
        f"worst {worst:.2f} other cores; load average {load:.1f} on {os.cpu_count()} cores{flag}"
    )
