"""Metrics sinks: the JSONL file (flushed per row, safe to cut), resume truncation, progress lines."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from slowthink.config import ConfigError
from slowthink.tracking import (
    JsonlTracker,
    MultiTracker,
    StepProgress,
    TensorBoardTracker,
    TrackingConfig,
    build_tracker,
    read_metrics,
    truncate_metrics,
)


def test_rows_are_flushed_as_soon_as_they_are_logged(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    tracker = JsonlTracker(path)
    tracker.log({"loss": 0.5, "accuracy": 1}, step=1)
    # Readable before close: a SIGKILL now loses nothing.
    assert path.read_text() == '{"step": 1, "loss": 0.5, "accuracy": 1}\n'
    tracker.log({"loss": float("nan"), "kl": float("inf"), "note": "x"}, step=2)
    assert read_metrics(path) == [{"step": 1, "loss": 0.5, "accuracy": 1}, {"step": 2, "loss": None, "kl": None, "note": "x"}]
    tracker.close()


def test_fresh_tracker_overwrites_and_resumed_one_appends(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 9, "old": 1}\n')
    fresh = JsonlTracker(path)
    fresh.log({"a": 1.0}, step=1)
    fresh.close()
    assert read_metrics(path) == [{"step": 1, "a": 1.0}]
    resumed = JsonlTracker(path, resume=True)
    resumed.log({"a": 2.0}, step=2)
    resumed.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_read_metrics_skips_a_truncated_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "x": 1}\n{"step": 2, "x": 2}\n{"step": 3, "x": 0.12')
    assert read_metrics(path) == [{"step": 1, "x": 1}, {"step": 2, "x": 2}]


def test_truncate_metrics_drops_rows_after_the_checkpoint_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": s / 10} for s in (0, 1, 2, 3, 4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "lo')
    truncate_metrics(path, last_step=2)
    assert read_metrics(path) == rows[:3]
    assert path.read_text().endswith("\n")
    truncate_metrics(tmp_path / "absent.jsonl", last_step=2)  # nothing to do
    assert not (tmp_path / "absent.jsonl").exists()


def test_resume_after_a_kill_mid_write_gives_a_clean_file(tmp_path):
    """What the recipes do on resume: truncate to the checkpoint's step (atomically, so
    before the file is opened for appending); a half-written row must not swallow the next one."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a"')
    truncate_metrics(path, last_step=1)
    tracker = build_tracker(TrackingConfig(), tmp_path, {}, resume=True)
    tracker.log({"a": 20}, step=2)
    tracker.close()
    assert read_metrics(path) == [{"step": 1, "a": 1}, {"step": 2, "a": 20}]
    assert len(path.read_text().splitlines()) == 2


def test_multi_tracker_fans_out_and_closes(tmp_path):
    a, b = JsonlTracker(tmp_path / "a.jsonl"), JsonlTracker(tmp_path / "b.jsonl")
    multi = MultiTracker([a, b])
    multi.log({"r": 0.25}, step=4)
    multi.close()
    assert read_metrics(tmp_path / "a.jsonl") == read_metrics(tmp_path / "b.jsonl") == [{"step": 4, "r": 0.25}]
    assert a._file.closed and b._file.closed


def test_tensorboard_sink_writes_events_or_says_what_to_install(tmp_path):
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ConfigError, match="tracking.tensorboard=true needs the 'tensorboard' package"):
            build_tracker(TrackingConfig(tensorboard=True), tmp_path, {}, resume=False)
    else:
        tracker = TensorBoardTracker(tmp_path / "tb")
        tracker.log({"loss": 1.0}, step=1)
        tracker.close()
        assert any((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_progress_prints_plain_lines_when_not_a_tty(capsys):
    progress = StepProgress("rl", total=3, keys=("accuracy", "kl", "missing"))
    assert not progress.tty  # pytest captures stderr
    progress.update(1, {"accuracy": 0.5, "kl": None})
    progress.update(2, {"accuracy": 0.6})  # within 2 s of the last line: skipped
    progress.update(3, {"accuracy": 0.71234, "kl": 0.001})  # the last step always prints
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[rl] step 1/3 accuracy=0.5", "[rl] step 3/3 accuracy=0.712 kl=0.001"]


def test_disabled_progress_prints_nothing(capsys):
    progress = StepProgress("sft", total=1, keys=("loss",), enabled=False)
    progress.update(1, {"loss": math.pi})
    progress.close()
    assert capsys.readouterr().err == ""


def test_wandb_sink_says_what_to_install(tmp_path):
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed: this checks the message shown without it")
    with pytest.raises(ConfigError, match="tracking.wandb=true needs the 'wandb' package: pip install wandb"):
        build_tracker(TrackingConfig(wandb=True), tmp_path, {}, resume=False)


# A child that rewrites metrics.jsonl while a file-size limit makes its writes fail part-way:
# the fault a kill or a full disk causes in the middle of the rewrite.
_REWRITE_UNDER_A_WRITE_FAULT = """
import resource, signal, sys
from slowthink.tracking import truncate_metrics
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    truncate_metrics(sys.argv[1], last_step=10**9)
except OSError as exc:
    print("write failed:", exc.errno)
"""


def test_a_failed_metrics_rewrite_leaves_the_history_intact(tmp_path):
    """Issue 8.2: an in-place rewrite emptied a 22 MB metrics.jsonl when killed mid-way."""
    import subprocess
    import sys

    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / (s + 1), "pad": "x" * 40} for s in range(200)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + '{"step": 200, "lo')  # a torn last row, so the rewrite has work to do
    done = subprocess.run([sys.executable, "-c", _REWRITE_UNDER_A_WRITE_FAULT, str(path)], capture_output=True, text=True, timeout=60)
    assert "write failed" in done.stdout, done.stderr
    assert read_metrics(path) == rows
    assert not [p.name for p in tmp_path.iterdir() if p.name != "metrics.jsonl"]  # no temp file left


def test_resumed_tracker_drops_rows_after_the_checkpoint_before_appending(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a"')
    tracker = build_tracker(TrackingConfig(), tmp_path, {}, resume=True, last_step=1)
    tracker.log({"a": 20}, step=2)
    tracker.close()
    assert read_metrics(path) == [{"step": 1, "a": 1}, {"step": 2, "a": 20}]
    # Without a step, a resumed tracker still cuts a torn last row before appending.
    path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a"')
    tracker = JsonlTracker(path, resume=True)
    tracker.log({"a": 3}, step=3)
    tracker.close()
    assert read_metrics(path) == [{"step": 1, "a": 1}, {"step": 3, "a": 3}]
