"""Where metrics go: ``metrics.jsonl`` always; TensorBoard, Weights & Biases and MLflow when asked.

Must not import the CLI; the one module that imports wandb and mlflow (tests/test_layers.py).

The live display (``StepProgress``) is in progress.py, re-exported here.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from slowthink.config import ConfigError, StrictConfig
from slowthink.durable import atomic_write_text
from slowthink.progress import StepProgress  # noqa: F401  (re-exported: the recipes import it from here)


class TrackingConfig(StrictConfig):
    """Metric sinks beside metrics.jsonl (TensorBoard, Weights & Biases)."""

    tensorboard: bool = False
    """Also log to TensorBoard in the run directory (needs the tensorboard package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package: pip install 'slowthink[tracking]').
    --resume continues the same W&B run: its id is kept in the run directory (trackers.json)."""
    wandb_project: str = "slowthink"
    """Weights & Biases project name."""
    wandb_entity: str | None = None
    """W&B entity (team or user); null: your default entity."""
    wandb_group: str | None = None
    """W&B group, e.g. one per sweep or seed set; null: none."""
    wandb_tags: tuple[str, ...] = ()
    """W&B tags of the run."""
    mlflow: bool = False
    """Also log to MLflow (needs mlflow or mlflow-skinny). --resume continues the same MLflow run."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI; null: $MLFLOW_TRACKING_URI, else a local store, file:<run dir>/mlruns."""
    mlflow_experiment: str = "slowthink"
    """MLflow experiment name (created when missing)."""
    name: str | None = None
    """The run's display name in W&B and MLflow; null: the run directory's name."""


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    # Rollouts of the step (samples.py rows); metrics.jsonl has them in samples/ instead.
    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None: ...

    def close(self) -> None: ...


class JsonlTracker:
    """One JSON object per step, flushed at once, so a killed run loses no logged step.

    A resumed tracker first drops the rows logged after ``last_step`` (the checkpoint being
    resumed from) and any torn last row, with an atomic rewrite, and only then opens the file
    for appending: appending to a file that is later renamed over would write into the old one.
    """

    def __init__(self, path: Path, resume: bool = False, last_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume:
            truncate_metrics(self.path, last_step if last_step is not None else math.inf)
        self._file = self.path.open("a" if resume else "w", encoding="utf-8")

    def log(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: (v if not (isinstance(v, float) and not math.isfinite(v)) else None) for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        """Nothing to add: the recipe itself writes samples/step_NNNNNN.jsonl beside metrics.jsonl."""

    def close(self) -> None:
        self._file.close()


class TensorBoardTracker:
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("tracking.tensorboard=true needs the 'tensorboard' package: pip install tensorboard") from exc
        self._writer = SummaryWriter(str(log_dir))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            if value is not None:  # nothing measured this step (e.g. no update): a gap, not a 0
                self._writer.add_scalar(key, value, step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        # TensorBoard's text tab renders markdown: one block per rollout.
        text = "\n\n---\n\n".join(
            f"**{r['problem_id']}** ({r['verdict']}, reward {r['reward']:.3g}, {r['length']} tokens, {r['finish_reason']})\n\n"
            f"    {r['completion']}".replace("\n", "\n    ")
            for r in rows
        )
        self._writer.add_text("samples", text, step)

    def close(self) -> None:
        self._writer.close()


# The ids of a run's W&B and MLflow runs, kept in its directory so --resume logs to the same ones.
TRACKER_IDS_FILE = "trackers.json"


def tracker_run_id(run_dir: Path, sink: str, resume: bool, new_id: Callable[[], str]) -> str:
    """The id ``sink`` ("wandb", "mlflow") logs this run under: the saved one when resuming,
    else ``new_id()``, saved (atomically) before the sink starts, so that a kill at any point
    after leaves an id for the resume to continue."""
    path = Path(run_dir) / TRACKER_IDS_FILE
    ids: dict[str, str] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            ids = {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            print(f"warning: {path} cannot be read; {sink} logs to a new run", file=sys.stderr, flush=True)
    if resume and sink in ids:
        return ids[sink]
    ids[sink] = new_id()
    atomic_write_text(path, json.dumps(ids, indent=1) + "\n")
    return ids[sink]


def run_name(config: TrackingConfig, run_dir: Path) -> str:
    return config.name or Path(run_dir).resolve().name


class WandbTracker:
    def __init__(self, config: TrackingConfig, run_dir: Path, run_config: dict[str, Any], resume: bool = False):
        try:
            import wandb
        except ImportError as exc:
            raise ConfigError("tracking.wandb=true needs the 'wandb' package: pip install 'slowthink[tracking]'") from exc
        run_id = tracker_run_id(run_dir, "wandb", resume, lambda: secrets.token_hex(4))  # W&B ids: [a-z0-9]
        # resume="allow": the run with this id continues, or starts under it (e.g. a resume of
        # a run that logged nothing yet). Steps logged again after the checkpoint are dropped
        # by W&B, which keeps the first value of a step: metrics.jsonl is the record.
        self._run = wandb.init(
            project=config.wandb_project,
            entity=config.wandb_entity,
            group=config.wandb_group,
            tags=list(config.wandb_tags) or None,
            name=run_name(config, run_dir),
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=run_config,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        import wandb

        columns = ["step", "problem_id", "prompt", "completion", "reward", "verdict", "length", "finish_reason"]
        table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
        self._run.log({"samples": table}, step=step)

    def close(self) -> None:
        self._run.finish()


class MlflowTracker:
    """Metrics to an MLflow run (through ``MlflowClient``, no global active run); the config's
    keys as the run's parameters, once, when the run is created."""

    def __init__(self, config: TrackingConfig, run_dir: Path, run_config: dict[str, Any], resume: bool = False):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ConfigError("tracking.mlflow=true needs the 'mlflow' (or 'mlflow-skinny') package: pip install mlflow-skinny") from exc
        uri = config.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (Path(run_dir).resolve() / "mlruns").as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store for existing users behind this switch; a local
            # store is what a run without a tracking server has.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client, self._created = MlflowClient(tracking_uri=uri), False
        self.run_id = tracker_run_id(run_dir, "mlflow", resume, lambda: self._create_run(config, run_dir))
        if not self._created:  # resumed: the run exists
            self._client.update_run(self.run_id, status="RUNNING")
            return
        from mlflow.entities import Param

        # Parameters are logged once: MLflow refuses to change one, and a resume may change
        # an allowed key (train.steps).
        params = _flatten(run_config)
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            self._client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params[start : start + 100]])

    def _create_run(self, config: TrackingConfig, run_dir: Path) -> str:
        experiment = self._client.get_experiment_by_name(config.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(config.mlflow_experiment)
        self._created = True
        return self._client.create_run(experiment_id, run_name=run_name(config, run_dir)).info.run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        numbers = [(k, float(v)) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        for start in range(0, len(numbers), 1000):  # MLflow's batch limit
            self._client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in numbers[start : start + 1000]])

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        self._client.log_text(self.run_id, "".join(json.dumps(row) + "\n" for row in rows), f"samples/step_{step:06d}.jsonl")

    def close(self) -> None:
        self._client.set_terminated(self.run_id)


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"kl": {"mode": "off"}}`` -> ``[("kl.mode", "off")]`` (the dotted keys of the config)."""
    if not isinstance(tree, dict):
        return [(prefix, tree)]
    return [pair for key, value in tree.items() for pair in _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}")]


def _as_row(raw: bytes) -> dict[str, Any] | None:
    """One line of ``metrics.jsonl`` as a row: a JSON object whose ``step`` (if any) is a number."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except ValueError:  # not UTF-8, not JSON
        return None
    if not isinstance(row, dict):  # null, a list, a number
        return None
    step = row.get("step", 0)
    return row if isinstance(step, (int, float)) and not isinstance(step, bool) else None


def parse_metrics(path: Path) -> tuple[list[dict[str, Any]], list[tuple[int, bytes]]]:
    """(rows, unreadable lines as (line number, bytes)) of a ``metrics.jsonl``.

    A last line without its newline that does not parse is a row cut by a kill mid-write: it
    is neither (the step is logged again after the resume).
    """
    lines = Path(path).read_bytes().split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a torn row
    if tail.strip() and _as_row(tail) is not None:
        lines.append(tail)
    rows, unreadable = [], []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        row = _as_row(raw)
        if row is None:
            unreadable.append((number, raw))
        else:
            rows.append(row)
    return rows, unreadable


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl``; lines that are not rows (a torn last line, garbage) are skipped."""
    return parse_metrics(path)[0]


def truncate_metrics(path: Path, last_step: float) -> None:
    """On resume, drop rows logged after the checkpoint being resumed from (and a torn last row).

    The new file is written beside the old one, fsynced and renamed over it (an in-place rewrite
    killed mid-way once emptied a 22 MB history): a kill
    or a full disk during the rewrite leaves the old history whole, never an empty file.
    Nothing is written when nothing would change. A line that cannot be read (a damaged row,
    ``null``, bytes that are not UTF-8) is not dropped in silence: it is appended to
    ``metrics.jsonl.unreadable`` first, and a warning names its line number.
    """
    path = Path(path)
    if not path.is_file():
        return
    rows, unreadable = parse_metrics(path)
    if unreadable:
        side = path.with_name(path.name + ".unreadable")
        with side.open("ab") as handle:
            handle.writelines(raw + b"\n" for _, raw in unreadable)
            handle.flush()
            os.fsync(handle.fileno())
        numbers = ", ".join(str(number) for number, _ in unreadable)
        print(f"warning: {path} line(s) {numbers} cannot be read as metrics rows; moved to {side}", file=sys.stderr, flush=True)
    new_text = "".join(json.dumps(r) + "\n" for r in rows if r.get("step", 0) <= last_step)
    if new_text.encode("utf-8") != path.read_bytes():
        atomic_write_text(path, new_text)


class MultiTracker:
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def log_samples(self, rows: list[dict[str, Any]], step: int) -> None:
        for tracker in self.trackers:
            tracker.log_samples(rows, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def build_tracker(config: TrackingConfig, run_dir: Path, run_config: dict[str, Any], resume: bool, last_step: int | None = None) -> MultiTracker:
    """All sinks of a run; resuming from the checkpoint of ``last_step`` drops later rows first."""
    trackers: list[Tracker] = [JsonlTracker(Path(run_dir) / "metrics.jsonl", resume=resume, last_step=last_step)]
    if config.tensorboard:
        trackers.append(TensorBoardTracker(Path(run_dir) / "tensorboard"))
    if config.wandb:
        trackers.append(WandbTracker(config, Path(run_dir), run_config, resume=resume))
    if config.mlflow:
        trackers.append(MlflowTracker(config, Path(run_dir), run_config, resume=resume))
    return MultiTracker(trackers)
