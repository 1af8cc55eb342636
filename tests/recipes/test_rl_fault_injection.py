"""Fault injection: a tiny RL run SIGKILLed at random points, resumed until done,
ends with exactly the metrics history and weights of a run never interrupted.

The kills land during start-up (also of ``--resume``, where metrics are cut back to the
checkpoint with an atomic rewrite and the checkpoint is verified), during steps, and during
checkpoint writes (a kill is fired the moment a ``step_NNNNNN.tmp`` directory appears). To fit many
kills in a bounded time, runs are forked from a "zygote" process that has imported torch and
the recipe once; each child runs the real command line (``slowthink rl ...``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from rl_helpers import TINY_RL  # noqa: E402

STEPS = ["train.steps=4", "train.save_every=1", "kl.mode=fixed", "kl.reference_reset_every=2"]
SEEDS = range(4)
KILLS_PER_SEED = 2
SAFETY_S = 150  # no new kills after this, whatever the machine's load
# Metrics that measure wall-clock time differ between any two runs.
TIMING = ("time/", "tokens_per_s")

ZYGOTE = r"""
import json, os, sys
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch
torch.set_num_threads(1)
import slowthink.recipes.rl, slowthink.recipes.rl_config  # noqa: F401  (imported once, before forking)
from slowthink.cli import app
print("ready", flush=True)
for line in sys.stdin:
    args, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(out, 1), os.dup2(out, 2)
        code = 1
        try:
            app(args=args, prog_name="slowthink")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


class Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout.readline().strip() == "ready"

    def start(self, args: list[str], log: Path) -> int:
        self.process.stdin.write(json.dumps([args, str(log)]) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def wait(self) -> int:
        """Wait status of the last child (0 = exited 0, 9 = SIGKILL)."""
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _in_checkpoint_write(run_dir: Path) -> bool:
    root = run_dir / "checkpoints"
    return root.is_dir() and any(p.name.endswith(".tmp") for p in root.iterdir())


def _kill_after(pid: int, run_dir: Path, delay: float, on_checkpoint: bool) -> str | None:
    """SIGKILL ``pid`` after ``delay`` s, or at once when a checkpoint write is seen; returns
    where the kill landed, or None if the child ended first."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline or on_checkpoint:
        if on_checkpoint and _in_checkpoint_write(run_dir):
            break
        if _is_gone(pid):  # the zygote's child, not ours: probe /proc instead of waitpid
            return None
        time.sleep(0.002)
    phase = "checkpoint write" if _in_checkpoint_write(run_dir) else "start-up or step"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return phase


def _is_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _history(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith(TIMING)} for row in read_metrics(run_dir / "metrics.jsonl")]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run_dir) / "model.safetensors")


@pytest.mark.slow
def test_random_sigkills_then_resume_equal_an_uninterrupted_run(tmp_path):
    began = time.monotonic()
    zygote = Zygote()
    try:
        straight = tmp_path / "straight"
        t0 = time.monotonic()
        zygote.start(["rl", f"run.output_dir={straight}", *TINY_RL, *STEPS], tmp_path / "straight.log")
        assert zygote.wait() == 0, (tmp_path / "straight.log").read_text()
        duration = time.monotonic() - t0
        expected_history, expected_weights = _history(straight), _weights(straight)
        assert [r["step"] for r in expected_history] == [1, 2, 3, 4]

        landed: dict[str, int] = {}
        for seed in SEEDS:
            rng = random.Random(seed)
            run_dir = tmp_path / f"killed{seed}"
            args = ["rl", f"run.output_dir={run_dir}", *TINY_RL, *STEPS]
            attempt = 0
            while True:
                log = tmp_path / f"killed{seed}.{attempt}.log"
                pid = zygote.start(args if attempt == 0 else [*args, "--resume"], log)
                kill = attempt < KILLS_PER_SEED and time.monotonic() - began < SAFETY_S
                # The first kill lands somewhere in a whole run (start-up included); a resumed
                # run is shorter, so later kills aim at its first half (its start-up among it).
                delay = rng.uniform(0, 0.9 * duration if attempt == 0 else 0.5 * duration)
                phase = _kill_after(pid, run_dir, delay, on_checkpoint=rng.random() < 0.3) if kill else None
                status = zygote.wait()
                if phase is None:
                    assert status == 0, f"seed {seed} attempt {attempt}: wait status {status}\n{log.read_text()[-3000:]}"
                    break
                landed[phase] = landed.get(phase, 0) + 1
                attempt += 1
            assert _history(run_dir) == expected_history, f"seed {seed}"
            weights = _weights(run_dir)
            assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights), f"seed {seed}"
        print(f"kills: {landed} in {time.monotonic() - began:.1f} s (uninterrupted run {duration:.2f} s)")
        assert sum(landed.values()) >= len(SEEDS)
    finally:
        zygote.close()
