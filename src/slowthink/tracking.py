"""Where metrics go: ``metrics.jsonl`` always; TensorBoard and Weights & Biases when asked.

Must not import the CLI; the one module that imports wandb (tests/test_layers.py).

The live display (``StepProgress``) is in progress.py, re-exported here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol

from slowthink.config import ConfigError, StrictConfig
from slowthink.durable import atomic_write_text
from slowthink.progress import StepProgress  # noqa: F401  (re-exported: the recipes import it from here)


class TrackingConfig(StrictConfig):
    # Also log to TensorBoard in the run directory (needs the tensorboard package).
    tensorboard: bool = False
    # Also log to Weights & Biases (needs the wandb package).
    wandb: bool = False
    # Weights & Biases project name.
    wandb_project: str = "slowthink"


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

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

    def close(self) -> None:
        self._writer.close()


class WandbTracker:
    def __init__(self, project: str, run_dir: Path, config: dict[str, Any]):
        try:
            import wandb
        except ImportError as exc:
            raise ConfigError("tracking.wandb=true needs the 'wandb' package: pip install wandb") from exc
        self._run = wandb.init(project=project, dir=str(run_dir), config=config)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def close(self) -> None:
        self._run.finish()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl``; a truncated last line (killed mid-write) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(path: Path, last_step: float) -> None:
    """On resume, drop rows logged after the checkpoint being resumed from (and a torn last row).

    The new file is written beside the old one, fsynced and renamed over it (issue 8): a kill
    or a full disk during the rewrite leaves the old history whole, never an empty file.
    Nothing is written when nothing would change.
    """
    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    new_text = "".join(json.dumps(r) + "\n" for r in rows)
    if new_text != text:
        atomic_write_text(path, new_text)


class MultiTracker:
    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.log(metrics, step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()


def build_tracker(config: TrackingConfig, run_dir: Path, run_config: dict[str, Any], resume: bool, last_step: int | None = None) -> MultiTracker:
    """All sinks of a run; resuming from the checkpoint of ``last_step`` drops later rows first."""
    trackers: list[Tracker] = [JsonlTracker(Path(run_dir) / "metrics.jsonl", resume=resume, last_step=last_step)]
    if config.tensorboard:
        trackers.append(TensorBoardTracker(Path(run_dir) / "tensorboard"))
    if config.wandb:
        trackers.append(WandbTracker(config.wandb_project, Path(run_dir), run_config))
    return MultiTracker(trackers)
