"""Metrics sinks: the JSONL file (flushed per row, safe to cut), resume truncation, progress lines."""

from __future__ import annotations

import importlib.util
import json
import math
import re

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
    with pytest.raises(ConfigError, match=r"tracking.wandb=true needs the 'wandb' package: pip install 'slowthink\[tracking\]'"):
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
    """An in-place rewrite emptied a 22 MB metrics.jsonl when killed mid-way."""
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


# ------------------------------------------------------------------ W&B and MLflow: --resume continues the same run


def test_a_resumed_run_keeps_its_tracker_ids_and_a_fresh_one_gets_new_ones(tmp_path):
    from slowthink.tracking import TRACKER_IDS_FILE, tracker_run_id

    ids = iter(["first", "second", "third"])
    assert tracker_run_id(tmp_path, "wandb", resume=False, new_id=lambda: next(ids)) == "first"
    assert tracker_run_id(tmp_path, "wandb", resume=True, new_id=lambda: next(ids)) == "first"
    assert tracker_run_id(tmp_path, "mlflow", resume=True, new_id=lambda: "ml") == "ml"  # no saved mlflow id yet
    assert json.loads((tmp_path / TRACKER_IDS_FILE).read_text()) == {"wandb": "first", "mlflow": "ml"}
    # A fresh run (run.overwrite=true, or a resume that found no checkpoint) is a new W&B run.
    assert tracker_run_id(tmp_path, "wandb", resume=False, new_id=lambda: next(ids)) == "second"
    assert tracker_run_id(tmp_path, "wandb", resume=True, new_id=lambda: next(ids)) == "second"


def test_an_unreadable_ids_file_is_a_new_run_with_a_warning(tmp_path, capsys):
    from slowthink.tracking import TRACKER_IDS_FILE, tracker_run_id

    (tmp_path / TRACKER_IDS_FILE).write_bytes(b"\xff{not json")
    assert tracker_run_id(tmp_path, "wandb", resume=True, new_id=lambda: "fresh") == "fresh"
    assert TRACKER_IDS_FILE in capsys.readouterr().err
    assert json.loads((tmp_path / TRACKER_IDS_FILE).read_text()) == {"wandb": "fresh"}


def test_wandb_name_entity_group_and_tags_are_config_keys():
    from slowthink.config import load_config

    config = load_config(TrackingConfig, None, ["wandb=true", "name=seed0", "wandb_entity=lab", "wandb_group=sweep1", "wandb_tags=[rl, tiny]"])
    assert (config.name, config.wandb_entity, config.wandb_group, config.wandb_tags) == ("seed0", "lab", "sweep1", ("rl", "tiny"))


def test_wandb_resume_continues_the_same_run_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = TrackingConfig(wandb=True, name="seed0", wandb_group="g", wandb_tags=("t",))
    first = build_tracker(config, tmp_path, {"lr": 0.1}, resume=False)
    first.log({"loss": 1.0}, step=1)
    run = first.trackers[1]._run
    run_id, name, group, tags = run.id, run.name, run.group, tuple(run.tags)
    first.close()
    second = build_tracker(config, tmp_path, {"lr": 0.1}, resume=True, last_step=1)
    assert second.trackers[1]._run.id == run_id
    second.log({"loss": 0.5}, step=2)
    second.close()
    assert (name, group, tags) == ("seed0", "g", ("t",))
    runs = sorted(p.name for p in (tmp_path / "wandb").glob("offline-run-*"))
    # wandb names a folder offline-run-<time>-<id>, adding -1 when both runs start in the same second.
    assert len(runs) == 2 and all(re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{run_id}(-\d+)?", p) for p in runs), runs
    fresh = build_tracker(config, tmp_path, {"lr": 0.1}, resume=False)
    assert fresh.trackers[1]._run.id != run_id
    fresh.close()


def test_mlflow_resume_continues_the_same_run_in_a_local_store(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "store").as_uri()
    config = TrackingConfig(mlflow=True, mlflow_tracking_uri=store, mlflow_experiment="tiny", name="seed0")
    first = build_tracker(config, tmp_path / "run", {"kl": {"mode": "off"}, "train": {"steps": 3}}, resume=False)
    first.log({"loss": 1.0, "note": "text", "gap": None, "reward/format": 0.5}, step=1)
    first.log({"loss": 0.9}, step=2)
    first.close()
    second = build_tracker(config, tmp_path / "run", {"kl": {"mode": "off"}, "train": {"steps": 6}}, resume=True, last_step=2)
    second.log({"loss": 0.5}, step=3)
    run_id = second.trackers[1].run_id
    second.close()
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.run_name == "seed0" and run.info.status == "FINISHED"
    assert run.data.params == {"kl.mode": "off", "train.steps": "3"}  # logged once, at creation
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 1.0), (2, 0.9), (3, 0.5)]
    assert set(run.data.metrics) == {"loss", "reward/format"}
    assert len(client.search_runs([client.get_experiment_by_name("tiny").experiment_id])) == 1


@pytest.mark.slow
def test_an_rl_resume_logs_to_the_same_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import sys
    from pathlib import Path

    from slowthink.recipes.rl import run_rl

    sys.path.insert(0, str(Path(__file__).parent / "recipes"))
    from rl_helpers import tiny_rl_config

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_rl(tiny_rl_config(tmp_path, "train.steps=1", "tracking.wandb=true", "tracking.name=tiny"))
    first = json.loads((tmp_path / "trackers.json").read_text())["wandb"]
    run_rl(tiny_rl_config(tmp_path, "train.steps=2", "tracking.wandb=true", "tracking.name=tiny"), resume=True)
    assert json.loads((tmp_path / "trackers.json").read_text())["wandb"] == first
    runs = sorted(p.name for p in (tmp_path / "wandb").glob("offline-run-*"))
    # offline-run-<time>-<id>; wandb adds -1 when both runs start within one second.
    assert len(runs) == 2 and all(name.split("-")[3] == first for name in runs), runs
