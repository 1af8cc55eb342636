"""Run a study's plan: cold starts first, then every RL arm; resumable at any point.

- A run that finished has a ``STUDY_DONE`` marker (written atomically after the recipe
  returned) and is skipped on the next invocation.
- Every other run is started with ``--resume``: a run killed mid-way continues from its
  last checkpoint (the recipes' own resume), one never started begins at step 0.
- ``parallel=1`` runs in this process; ``parallel=N`` launches N ``slowthink`` subprocesses at
  a time, each with ``cores // N`` torch threads, and its output in ``<run_dir>.log``.
- One failed run does not stop the others (RL arms of a seed whose cold start failed are
  skipped); the failures are listed in the report and make the command exit non-zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from slowthink.durable import atomic_write_text, exclusive_lock
from slowthink.study.config import StudyConfig
from slowthink.study.plan import Job, Plan

DONE = "STUDY_DONE"


@dataclass
class StudyOutcome:
    """What happened to each job in this invocation."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished in an earlier invocation
    failed: dict[str, str] = field(default_factory=dict)  # job name -> one-line reason


def is_done(job: Job) -> bool:
    marker = job.run_dir / DONE
    if not marker.is_file():
        return False
    return json.loads(marker.read_text()).get("config_hash") == job.config_hash


def read_done(run_dir: Path) -> dict | None:
    marker = Path(run_dir) / DONE
    return json.loads(marker.read_text()) if marker.is_file() else None


def threads_per_run(parallel: int, cores: int | None = None) -> int:
    return max(1, (cores or os.cpu_count() or 1) // parallel)


def model_overrides(job: Job, plan: Plan) -> list[str]:
    """The cold start's last checkpoint as the RL run's model and optimizer state (as the demo does)."""
    if job.cold_start is None:
        return []
    from slowthink.training.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(plan.cold_starts[job.seed].run_dir)
    return [f"model.path={checkpoint}", f"model.optimizer_state={checkpoint}"]


def prepare_cold_start_base(job: Job, study: StudyConfig) -> list[str]:
    """The tiny model built with the study seed, as ``slowthink demo`` builds its SFT starting point."""
    if study.cold_start is None or not study.cold_start.tiny_base:
        return []
    from slowthink.models.tiny import save_tiny

    base = job.run_dir.parent / "base"
    if not (base / "config.json").is_file():
        save_tiny(base, seed=job.seed)
    return [f"model.path={base}"]


def run_job(job: Job, extra: list[str], threads: int, in_process: bool) -> None:
    """Run (or resume) one recipe; raise on failure; mark it done on success."""
    overrides = [*job.overrides, *extra, f"run.torch_threads={threads}", "run.progress=false"]
    started = time.perf_counter()
    if in_process:
        from slowthink.config import load_config

        if job.kind == "sft":
            from slowthink.recipes.sft import SFTConfig, run_sft

            run_sft(load_config(SFTConfig, job.config_file, overrides), resume=True)
        else:
            from slowthink.recipes.rl import run_rl
            from slowthink.recipes.rl_config import RLConfig

            run_rl(load_config(RLConfig, job.config_file, overrides), resume=True)
    else:
        job.run_dir.parent.mkdir(parents=True, exist_ok=True)
        # Not with_suffix: an arm named "t0.6" would lose ".6-<hash>" and share "t0.log" with "t0.8".
        log = job.run_dir.parent / f"{job.run_dir.name}.log"
        command = [sys.executable, "-m", "slowthink.cli", job.kind, str(job.config_file), *overrides, "--resume"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SLOWTHINK_TORCH_THREADS": str(threads)}
        with log.open("a") as handle:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            raise RuntimeError(f"exit status {code}; see {log}")
    marker = {"config_hash": job.config_hash, "wall_s": round(time.perf_counter() - started, 1), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(job.run_dir / DONE, json.dumps(marker) + "\n")


def run_study(study: StudyConfig, plan: Plan, log=print) -> StudyOutcome:
    """Run every job not yet done; returns what ran, what was skipped and what failed."""
    outcome = StudyOutcome()
    out = Path(study.output_dir)
    threads = threads_per_run(study.parallel)
    in_process = study.parallel == 1
    # One study process per output folder: two would train the same runs at once.
    with exclusive_lock(out / ".study.lock", f"study folder {out}"):
        _run_phase(list(plan.cold_starts.values()), study, plan, threads, in_process, outcome, log)
        _run_phase(list(plan.runs.values()), study, plan, threads, in_process, outcome, log)
    return outcome


def _run_phase(jobs: list[Job], study: StudyConfig, plan: Plan, threads: int, in_process: bool, outcome: StudyOutcome, log) -> None:
    todo, done = [], [job.name for job in jobs if is_done(job)]
    for job in jobs:
        if job.name in done:
            continue
        if job.cold_start is not None and job.cold_start in outcome.failed:
            outcome.failed[job.name] = f"its cold start {job.cold_start} failed"
        else:
            todo.append(job)
    outcome.skipped += done
    if done:
        log(f"[study] {len(done)} {jobs[0].kind} run(s) already done, skipped")

    def one(index_job: tuple[int, Job]) -> None:
        index, job = index_job
        log(f"[study] ({index + 1}/{len(todo)}) {job.name}: {'resuming' if (job.run_dir / 'checkpoints').exists() else 'starting'}")
        try:
            extra = prepare_cold_start_base(job, study) if job.kind == "sft" else model_overrides(job, plan)
            run_job(job, extra, threads, in_process)
        except Exception as exc:  # noqa: BLE001  one failed run must not stop the grid; it is reported
            outcome.failed[job.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log(f"[study] {job.name} FAILED: {outcome.failed[job.name]}")
            return
        outcome.ran.append(job.name)
        log(f"[study] {job.name} done ({read_done(job.run_dir)['wall_s']} s)")

    if in_process:
        for item in enumerate(todo):
            one(item)
    else:
        with ThreadPoolExecutor(max_workers=study.parallel) as pool:
            list(pool.map(one, enumerate(todo)))
