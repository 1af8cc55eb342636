"""How long a study's remaining runs will take: the estimate ``slowthink study --dry-run`` prints.

Each run still to do costs what the same arm measured on another seed of this study (the
``wall_s`` of its ``STUDY_DONE`` marker), or, before any such run finished, the grid's
``cost`` section: steps x seconds per step + held-out evaluations x seconds each (an SFT
cold start: one figure). A run that stopped part-way costs the share of its steps still to
run. The runs of a phase (cold starts, then RL arms) go ``parallel`` at a time, so the wall
time is each phase's total divided by ``parallel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slowthink.study.config import StudyConfig
from slowthink.study.plan import Job, Plan
from slowthink.study.runner import is_done, read_done
from slowthink.tracking import read_metrics


@dataclass(frozen=True)
class JobEstimate:
    job: Job
    seconds: float  # still to run (0 when done)
    measured: bool  # from this study's finished runs (else the grid's cost section)
    done: bool = False  # finished in an earlier invocation


@dataclass(frozen=True)
class Estimate:
    jobs: list[JobEstimate]
    wall_s: float  # both phases, ``parallel`` runs at a time

    @property
    def measured_share(self) -> float:
        todo = [j for j in self.jobs if not j.done]
        return sum(j.measured for j in todo) / len(todo) if todo else 1.0


def arm_label(job: Job) -> str:
    """``seed0/pps16-4ed6cb79`` -> ``pps16`` (the arm across seeds; ``base`` for the shared run)."""
    return job.name.split("/", 1)[1].rsplit("-", 1)[0]


def run_shape(job: Job) -> tuple[int, int]:
    """(steps, held-out evaluations) of an RL job, from its resolved config."""
    from slowthink.config import load_config
    from slowthink.recipes.rl_config import RLConfig

    train = load_config(RLConfig, job.config_file, list(job.overrides)).train
    evaluations = 1 + (train.steps // train.eval_every if train.eval_every else 0)
    if train.eval_every and train.steps % train.eval_every:
        evaluations += 1  # the final one
    return train.steps, evaluations


def steps_done(job: Job) -> int:
    path = Path(job.run_dir) / "metrics.jsonl"
    rows = read_metrics(path) if path.is_file() else []
    return max((int(r["step"]) for r in rows if isinstance(r.get("step"), int)), default=0)


def measured_seconds(jobs: list[Job]) -> dict[str, float]:
    """Arm label (or ``sft``) -> mean wall seconds of its finished runs in this study."""
    walls: dict[str, list[float]] = {}
    for job in jobs:
        done = read_done(job.run_dir) if is_done(job) else None
        if done:
            walls.setdefault("sft" if job.kind == "sft" else arm_label(job), []).append(float(done["wall_s"]))
    return {label: sum(values) / len(values) for label, values in walls.items()}


def estimate(study: StudyConfig, plan: Plan) -> Estimate:
    """Seconds still to run per job, and the wall time of the whole study."""
    jobs = [*plan.cold_starts.values(), *plan.runs.values()]
    measured = measured_seconds(jobs)
    out = []
    for job in jobs:
        if is_done(job):
            out.append(JobEstimate(job, 0.0, True, done=True))
            continue
        label = "sft" if job.kind == "sft" else arm_label(job)
        if job.kind == "sft":
            whole, left = measured.get(label, study.cost.sft_run_s), 1.0
        else:
            steps, evaluations = run_shape(job)
            per_step = study.cost.arm_step_s.get(label, study.cost.rl_step_s)
            whole = measured.get(label, steps * per_step + evaluations * study.cost.eval_s)
            left = 1.0 - min(steps_done(job), steps) / steps
        out.append(JobEstimate(job, whole * left, label in measured))
    phases = [sum(e.seconds for e in out if e.job.kind == kind) for kind in ("sft", "rl")]
    return Estimate(out, sum(phases) / study.parallel)
