"""Per-cell overhead of the sandbox, against a fresh ``python -c`` in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sandbox.py [--cells 200] [--gap-ms 20]

Phases (median and p90 of the round trip seen by the caller, in ms):
  sandbox trivial, paced     one ``x = 1`` cell every ``gap`` ms, as in the tool loop,
                             where generation runs between cells (the spare child is ready)
  sandbox trivial, b2b       back to back: includes forking and limiting the next child
  sandbox sympy, paced       ``sp.solve(x**2 - 4, x)`` with sympy preloaded in the worker
  in-process sympy           the same sympy code exec'd in this process, sympy's cache
                             cleared first: the cell's own compute, without any sandbox
  python -c trivial / sympy  a fresh interpreter per cell (no isolation at all)
Each phase also records how many cores other processes used meanwhile; a phase where
they used more than ``--max-other-cores`` is marked CONTAMINATED (docs/design.md, "Two cores").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from slowthink.sandbox import ProcessSandbox, SandboxConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_usage import busy_jiffies, tree_jiffies  # noqa: E402

TRIVIAL = "x = 1"
SYMPY = "import sympy as sp\nx = sp.symbols('x')\nsp.solve(x**2 - 4, x)"


def measure(name: str, call, n: int, gap_s: float, max_other: float) -> dict:
    """Time ``n`` calls; returns median/p90 in ms and others' mean core use."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, busy0, mine0 = time.perf_counter(), busy_jiffies(), tree_jiffies(os.getpid())
    samples = []
    for _ in range(n):
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    seconds = time.perf_counter() - t0
    other = max(0, (busy_jiffies() - busy0) - (tree_jiffies(os.getpid()) - mine0)) / hz / seconds
    samples.sort()
    return {
        "name": name,
        "n": n,
        "median": statistics.median(samples),
        "p90": samples[int(0.9 * (n - 1))],
        "other": other,
        "contaminated": other > max_other,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=200, help="cells per sandbox phase")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between paced cells")
    parser.add_argument("--backend", default="auto", choices=["auto", "bwrap", "fallback"])
    parser.add_argument("--max-other-cores", type=float, default=0.25)
    args = parser.parse_args()
    gap = args.gap_ms / 1000
    box = ProcessSandbox(SandboxConfig(backend=args.backend, preload=("numpy", "sympy")))
    for code in (TRIVIAL, SYMPY):  # warm both paths once
        assert box.run(code).status == "ok"

    def cell(code: str):
        def call() -> None:
            result = box.run(code)
            assert result.status == "ok", result

        return call

    def fresh(code: str):
        return lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

    def in_process() -> None:
        from sympy.core.cache import clear_cache

        clear_cache()
        exec(SYMPY, {})

    n, m = args.cells, max(10, args.cells // 10)
    rows = [
        measure(f"sandbox ({box.backend}) trivial, paced", cell(TRIVIAL), n, gap, args.max_other_cores),
        measure(f"sandbox ({box.backend}) trivial, back to back", cell(TRIVIAL), n, 0, args.max_other_cores),
        measure(f"sandbox ({box.backend}) sympy, paced", cell(SYMPY), n, gap, args.max_other_cores),
        measure("in-process sympy (no sandbox)", in_process, n, gap, args.max_other_cores),
        measure("python -c trivial", fresh(TRIVIAL), m, gap, args.max_other_cores),
        measure("python -c sympy", fresh(SYMPY), m, gap, args.max_other_cores),
    ]
    box.close()
    print("| phase | cells | median ms | p90 ms | others' cores |")
    print("|---|---|---|---|---|")
    for row in rows:
        flag = ": CONTAMINATED" if row["contaminated"] else ""
        print(f"| {row['name']} | {row['n']} | {row['median']:.2f} | {row['p90']:.2f} | {row['other']:.2f}{flag} |")
    if any(row["contaminated"] for row in rows):
        print("WARNING: other processes used the CPU during the run; do not quote these figures as clean")


if __name__ == "__main__":
    main()
