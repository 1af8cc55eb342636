"""A run directory: one owner at a time, no silent mixing of two runs, resume only what was run.

``claim_run_dir`` is the first thing the ``rl`` and ``sft`` recipes do, before anything is
written, so two runs never mix their files and a fresh run never overwrites an old one:

1. Lock ``<output_dir>/.lock`` (``fcntl.flock``; only rank 0 under torchrun). A second run on
   the same directory fails at once with a message naming the holder's PID, instead of
   tearing metrics lines and pruning the other run's checkpoints.
2. A fresh run in a directory that already holds a run (logged metrics or checkpoints) is
   refused, unless ``run.overwrite=true``, which moves the old run's files into
   ``.overwritten/`` (checkpoints first, ``config.yaml`` last, one rename each) and then
   deletes that. A kill part-way leaves either the old run whole minus its checkpoints, or
   nothing of it: never checkpoints without the config they were trained with.
3. ``--resume`` compares the saved ``config.yaml`` with the new config and refuses changes
   outside ``RESUMABLE_KEYS`` (settings that do not change what is trained), naming each
   differing key; checkpoints without a ``config.yaml`` are refused too. Then the newest
   checkpoint that passes verification is chosen; with none, the run says so and starts fresh.

The lock is held until the ``with`` block ends; the kernel releases it if the process dies.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from slowthink.config import ConfigError, config_to_yaml
from slowthink.durable import atomic_write_text, exclusive_lock, fsync_dir
from slowthink.training.checkpoint import resume_checkpoint
from slowthink.training.distributed import DistInfo, broadcast_object

# Keys whose value may differ between the saved config and a resumed run's: they change how
# long a run goes, how often it saves, evaluates or logs, and where it lives, never what one
# step computes. Anything else (a learning rate, a KL schedule, the data) would continue a
# checkpoint under a config it was not trained with. Patterns are fnmatch over dotted keys.
RESUMABLE_KEYS = (
    "run.output_dir",  # a run directory that was moved or copied
    "run.overwrite",
    "run.progress",
    "run.torch_threads",
    "train.steps",  # longer or shorter; a cosine schedule's remaining horizon follows it
    "train.save_every",
    "train.keep_checkpoints",
    "train.log_samples_every",
    "train.log_samples_prompts",
    "train.eval_every",
    "train.eval_max_problems",
    "tracking.*",
)

# What a run writes into its directory (and run.overwrite removes); metrics.jsonl.unreadable
# holds lines a resume could not read (tracking.truncate_metrics).
RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.jsonl.unreadable", "checkpoints", "tensorboard", "samples")
# "Holds a run": something was trained or logged. A config.yaml alone is a run that stopped
# before its first step (a wrong model path, say): retrying it must not need run.overwrite.
RUN_HISTORY = ("metrics.jsonl", "checkpoints")
# The order run.overwrite=true moves them out: checkpoints first (after that nothing of the old
# run can be resumed), config.yaml last (until then a resume is checked against the old config).
REMOVAL_ORDER = ("checkpoints", "tensorboard", "samples", "metrics.jsonl", "metrics.jsonl.unreadable", "config.yaml")
# Where they go before they are deleted; a leftover one (a kill while deleting) is removed by the next run.
TRASH = ".overwritten"
# Config keys naming what a run reads: a fresh run must not overwrite or delete them.
INPUT_KEYS = ("model.path", "data.train_file", "data.eval_file")


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: its directory and the checkpoint to resume from (None = step 0)."""

    run_dir: Path
    checkpoint: Path | None


@contextmanager
def claim_run_dir(config: BaseModel, resume: bool, info: DistInfo) -> Iterator[RunStart]:
    """Lock the run directory and decide fresh vs resume; rank 0 decides, all ranks learn it."""
    run_dir = Path(config.run.output_dir)
    with ExitStack() as stack:
        checkpoint = None
        if info.is_main:
            # LockedError (names the holder's PID) when another run owns the directory.
            stack.enter_context(exclusive_lock(run_dir / ".lock", f"run directory {run_dir}"))
            checkpoint = _prepare(run_dir, config, resume)
        checkpoint = broadcast_object(checkpoint, info)
        yield RunStart(run_dir, checkpoint)


def _prepare(run_dir: Path, config: BaseModel, resume: bool) -> Path | None:
    """Checks and writes under the lock; returns the checkpoint to resume from."""
    if resume and getattr(config.run, "overwrite", False):
        raise ConfigError("--resume and run.overwrite=true contradict each other: choose one")
    shutil.rmtree(run_dir / TRASH, ignore_errors=True)  # an old run whose deletion a kill cut short
    existing = existing_run_files(run_dir, RUN_HISTORY)
    checkpoint = None
    if resume:
        saved = run_dir / "config.yaml"
        if saved.is_file():
            check_resumable(read_saved_config(saved), config.model_dump(mode="json"), saved)
        elif "checkpoints" in existing:
            # Every run writes config.yaml before its first checkpoint: without it the weights'
            # config is unknown, and continuing them under the new one would mix two runs.
            raise ConfigError(
                f"--resume: {run_dir} has checkpoints but no config.yaml, so the config they were trained with "
                "cannot be checked: restore config.yaml, or start over with run.overwrite=true"
            )
        checkpoint = resume_checkpoint(run_dir)
        if checkpoint is None:
            print(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; starting fresh from step 0", file=sys.stderr, flush=True)
    else:
        if existing and not config.run.overwrite:
            raise ConfigError(
                f"{run_dir} already holds a run ({', '.join(existing)}): continue it with --resume, "
                "start over with run.overwrite=true, or choose another run.output_dir"
            )
        check_inputs_survive(run_dir, config)
        if existing:
            removed = remove_run(run_dir)
            print(f"run.overwrite=true: removed the previous run's {', '.join(removed)} from {run_dir}", file=sys.stderr, flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = config_to_yaml(config)
    path = run_dir / "config.yaml"
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    return checkpoint


def check_inputs_survive(run_dir: Path, config: BaseModel) -> None:
    """Refuse a fresh run whose model or data lies in a file it rewrites or, under
    run.overwrite=true, deletes (e.g. ``model.path`` = one of this directory's checkpoints)."""
    flat = flatten(config.model_dump(mode="json"))
    for key in INPUT_KEYS:
        source = flat.get(key)
        if not isinstance(source, str) or not source:
            continue
        read = os.path.realpath(source)
        for name in RUN_FILES:
            written = os.path.realpath(run_dir / name)
            if read == written or read.startswith(written + os.sep):
                raise ConfigError(
                    f"{key}={source} lies in {run_dir / name}, which a fresh run in {run_dir} replaces: "
                    "copy it elsewhere, continue the run with --resume, or choose another run.output_dir"
                )


def remove_run(run_dir: Path) -> list[str]:
    """Delete a run's files so that a kill at any moment leaves nothing resumable of it.

    Each file moves into ``TRASH`` by one atomic rename, in ``REMOVAL_ORDER``: the checkpoints
    go first, the config last. Only then is ``TRASH`` deleted, file by file.
    """
    trash = run_dir / TRASH
    trash.mkdir()
    moved = []
    for name in REMOVAL_ORDER:
        path = run_dir / name
        if path.exists() or path.is_symlink():
            os.rename(path, trash / name)
            moved.append(name)
    fsync_dir(run_dir)  # the renames on disk before anything is deleted
    shutil.rmtree(trash)
    return [name for name in RUN_FILES if name in moved]


def existing_run_files(run_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` exist in ``run_dir`` (an empty file or directory does not count)."""
    found = []
    for name in names:
        path = run_dir / name
        if path.is_dir() and any(path.iterdir()) or path.is_file() and path.stat().st_size > 0:
            found.append(name)
    return found


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dict -> {"section.key": value}; lists stay whole values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (saved value, new value)} for keys that differ and may not change on resume.

    A key the saved config lacks is a field added by a later version: it is not a change.
    A key only the saved config has is one the new version no longer knows: it is.
    """
    old_flat, new_flat = flatten(saved), flatten(new)
    changes = {}
    for key, old_value in old_flat.items():
        new_value = new_flat.get(key, "<no longer a field>")
        if old_value != new_value and not any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE_KEYS):
            changes[key] = (old_value, new_value)
    return changes


def read_saved_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}); fix or remove it to resume") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a config (a mapping of sections); fix or remove it to resume")
    return data


def check_resumable(saved: dict[str, Any], new: dict[str, Any], saved_path: Path) -> None:
    """Refuse to continue a run under a config it was not started with, naming every change."""
    changes = config_changes(saved, new)
    if changes:
        listed = "; ".join(f"{key}: {old!r} -> {value!r}" for key, (old, value) in sorted(changes.items()))
        raise ConfigError(
            f"--resume with a config that differs from {saved_path} in {listed}. Only these may change on "
            f"resume: {', '.join(RESUMABLE_KEYS)}. Resume with the saved values, or start a new run elsewhere"
        )
