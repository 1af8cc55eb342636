"""Checker throughput: ``MathChecker`` (worker pool) vs plain single-process math-verify.

A realistic mix: for each MATH-500 gold, 8 rollouts (the reference solution, a short
correct answer, an equivalent form, two wrong answers, a hedge, an ``<answer>`` tag, a
solution with its box removed). The plain baseline is math-verify as commonly used:
``verify(parse(gold), parse(response))`` per pair in one process, with its own timeout.

Other processes' CPU use is read from /proc during each phase (the machine's busy time
minus this process tree's); a phase where others used more than ``--max-other-cores`` is
marked CONTAMINATED and its figure should not be reported.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_checker.py --golds 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_usage import busy_jiffies, tree_jiffies  # noqa: E402

MATH500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "math500.jsonl"
_BOX_RE = re.compile(r"\\boxed\{")


def rollouts(gold: str, solution: str, other: str, rng: random.Random) -> list[str]:
    """Eight responses to one problem: correct, equivalent, wrong, hedged, tagged, unanswered."""
    prose = solution[: rng.randint(400, 1500)]
    equivalent = gold.replace("\\frac", "\\dfrac") if "\\frac" in gold else f"{gold}.0" if gold.isdigit() else f" {gold} "
    wrong = str(int(gold) + 1) if gold.lstrip("-").isdigit() else other
    return [
        solution,
        f"{prose}\n\nSo the final answer is $\\boxed{{{gold}}}$.",
        f"{prose}\n\nThus $\\boxed{{{equivalent}}}$.",
        f"{prose}\n\nTherefore the answer is $\\boxed{{{wrong}}}$.",
        f"{prose}\n\nHence $\\boxed{{{other}}}$.",
        f"{prose}\n\nIt is $\\boxed{{{gold} \\text{{ or }} {wrong}}}$.",
        f"<think>{prose}</think> <answer>{gold}</answer>",
        _BOX_RE.sub("", solution),  # the box removed: no answer
    ]


def load_mix(n_golds: int, offset: int = 0, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in MATH500.open(encoding="utf-8")][offset : offset + n_golds]
    golds, responses = [], []
    for row in rows:
        other = rng.choice(rows)["answer"]
        for response in rollouts(row["answer"], row["meta"]["solution"], other, rng):
            golds.append(row["answer"])
            responses.append(response)
    return golds, responses


@dataclass
class Phase:
    name: str
    checks: int
    seconds: float
    other_cores: float  # mean number of cores used by processes outside this tree
    cpu_seconds: float  # CPU time of this process tree (parent + workers)

    @property
    def rate(self) -> float:
        return self.checks / self.seconds


class CpuWatch:
    """Measures wall time and other processes' CPU use over a ``with`` block."""

    def __enter__(self) -> CpuWatch:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.t0, self.busy0, self.mine0 = time.perf_counter(), busy_jiffies(), tree_jiffies(os.getpid())
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        busy = busy_jiffies() - self.busy0
        mine = tree_jiffies(os.getpid()) - self.mine0
        self.other_cores = max(0, busy - mine) / self.hz / self.seconds
        self.cpu_seconds = mine / self.hz


def run_plain(golds: list[str], responses: list[str]) -> tuple[Phase, list[bool]]:
    from math_verify import parse, verify

    results = []
    with CpuWatch() as watch:
        for gold, response in zip(golds, responses):
            results.append(bool(verify(parse(f"\\boxed{{{gold}}}"), parse(response))))
    return Phase("plain math-verify, 1 process", len(golds), watch.seconds, watch.other_cores, watch.cpu_seconds), results


def run_pool(checker, golds: list[str], responses: list[str]) -> tuple[Phase, list[bool]]:
    with CpuWatch() as watch:
        verdicts = checker.check(golds, responses)
    name = f"MathChecker, {len(checker.worker_pids)} workers"
    return Phase(name, len(golds), watch.seconds, watch.other_cores, watch.cpu_seconds), [v.correct for v in verdicts]


def best(phases: list[Phase]) -> Phase:
    """The fastest repeat: interference from other processes only ever slows a run down."""
    return max(phases, key=lambda phase: phase.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golds", type=int, default=100, help="MATH-500 problems (8 rollouts each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the fastest is reported")
    parser.add_argument("--max-other-cores", type=float, default=0.25, help="others' CPU above this marks a phase contaminated")
    args = parser.parse_args()
    if not MATH500.is_file():
        raise SystemExit(f"benchmark data {MATH500} is absent")
    if args.golds * args.repeats > 500:
        raise SystemExit("--golds x --repeats must be <= 500 (each repeat uses fresh MATH-500 golds)")
    print(f"{args.golds * 8} checks: {args.golds} MATH-500 golds x 8 rollouts; {os.cpu_count()} CPUs; best of {args.repeats}")
    from slowthink.rewards.math_checker import MathChecker

    plains, pools = [], []
    with MathChecker(workers=args.workers) as checker:
        checker.check(["1"], [r"\boxed{1}"])  # workers started and warm, as in training
        # Interleaved, so both see the same background; fresh golds each time, so no cache
        # carries over from one repeat to the next (a new RL step brings new prompts).
        for repeat in range(args.repeats):
            golds, responses = load_mix(args.golds, offset=repeat * args.golds)
            phase, pool_correct = run_pool(checker, golds, responses)
            pools.append(phase)
            phase, plain_correct = run_plain(golds, responses)
            plains.append(phase)
    plain, pool = best(plains), best(pools)
    for phase in (plain, pool):
        flag = "  CONTAMINATED" if phase.other_cores > args.max_other_cores else ""
        print(
            f"{phase.name:32s} {phase.rate:8.1f} checks/s  {phase.checks / phase.cpu_seconds:8.1f} checks/CPU-s"
            f"  ({phase.seconds:.2f} s; other processes {phase.other_cores:.2f} cores){flag}"
        )
    print(f"speed-up (wall): {pool.rate / plain.rate:.2f}x")
    # Per CPU-second: what the pool does with the cores it gets (a contaminated run still shows this).
    print(f"work per CPU-second, pool / plain: {plain.cpu_seconds / pool.cpu_seconds:.2f}x")
    agree = sum(a == b for a, b in zip(plain_correct, pool_correct))
    print(f"verdict agreement with plain math-verify (last repeat): {agree}/{len(golds)} (differences: our strict rules)")
    if max(plain.other_cores, pool.other_cores) > args.max_other_cores:
        print("WARNING: the run was contaminated by other processes; do not report these figures")


if __name__ == "__main__":
    main()
