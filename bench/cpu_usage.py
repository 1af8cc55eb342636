"""Who used the CPU during a benchmark: the machine's busy time and one process tree's.

Shared by the benchmarks so that each can refuse to report a contaminated run (other
processes busy on the same 2 cores change the figures by up to 15x).
"""

from __future__ import annotations

import os
from pathlib import Path


def busy_jiffies() -> int:
    """Busy time of all CPUs, from /proc/stat (user+nice+system+irq+softirq+steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


def tree_jiffies(root: int) -> int:
    """CPU time of ``root`` and its live descendants (utime+stime+cutime+cstime)."""
    parents, times = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)], times[int(entry)] = int(rest[1]), sum(int(x) for x in rest[11:15])
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total
