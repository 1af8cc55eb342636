"""Run reports: figures written as real PNGs, summary values, config differences, bad input."""

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.report import (
    ReportError,
    config_differences,
    ema,
    flatten_config,
    plot_run_metrics,
    run_labels,
    series,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("accuracy.png", "length.png", "completion.png", "keywords.png", "dynamics.png")


def train_row(step: int, accuracy, length, kl_coef: float, **extra) -> dict:
    """One RL step as ``slowthink rl`` logs it (a subset of its keys)."""
    return {
        "step": step,
        "accuracy": accuracy,
        "reward": accuracy,
        "response_length": length,
        "response_length_correct": length + 2.0,
        "response_length_incorrect": None,
        "completion_ratio": 0.9,
        "max_length": 64,
        "keywords/reflection": 0.5,
        "keywords/reflection_ratio": 0.25,
        "entropy": 1.2 - 0.1 * step,
        "kl": 0.01 * step,
        "kl_coef": kl_coef,
        "clip_fraction": 0.02,
        "grad_norm": 0.7,
        "lr": 1e-4,
        **extra,
    }


def make_run(root: Path, name: str, rows: list[dict], config: dict | None, tail: str = "") -> Path:
    run = root / name
    run.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in rows) + tail
    (run / "metrics.jsonl").write_text(text, encoding="utf-8")
    if config is not None:
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return run


def base_config(output_dir: str, kl: dict) -> dict:
    return {
        "run": {"output_dir": output_dir, "seed": 0},
        "kl": kl,
        "optim": {"lr": 1e-4},
        "rollout": {"max_length_schedule": [[0, 64]], "temperature": 1.0},
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two runs (KL off vs cosine), with nulls, sparse held-out rows and a truncated last line."""
    root = tmp_path_factory.mktemp("runs")
    kl_off = make_run(
        root,
        "kl_off",
        [
            {"step": 0, "heldout/accuracy": 0.5, "heldout/response_length": 26.0, "heldout/completion_ratio": 1.0},
            train_row(1, 0.25, 30.0, 0.0),
            train_row(2, None, 33.0, 0.0),  # null accuracy: a gap, not a zero
            train_row(3, 0.75, 37.0, 0.0, **{"heldout/accuracy": 0.875, "heldout/response_length": 38.0}),
        ],
        base_config("runs/kl_off", {"mode": "off", "coef": 0.001}),
        tail='{"step": 4, "accuracy": 0.',  # killed mid-write
    )
    kl_cos = make_run(
        root,
        "kl_cosine",
        [
            {"step": 0, "heldout/accuracy": 0.5},
            train_row(1, 0.5, 28.0, 0.001),
            train_row(2, 0.625, 29.0, 0.0005),
            train_row(3, 0.5, 30.0, 0.0, **{"heldout/accuracy": 0.625}),
        ],
        base_config("runs/kl_cosine", {"mode": "cosine", "coef": 0.001, "anneal_steps": 3}),
    )
    out = root / "report"
    path = write_report([kl_off, kl_cos], out, "KL off vs cosine", table=[("model", "accuracy"), ("SFT", "0.55"), ("RL", "0.91")])
    return path, path.read_text(encoding="utf-8")


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """Cells of every table row whose first cell is ``first_cell``."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


@pytest.mark.slow  # ~5 s: matplotlib import and figures
def test_writes_valid_pngs_and_embeds_them(report):
    path, text = report
    assert path.name == "report.md"
    for name in FIGURES:
        data = (path.parent / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        # IHDR: width and height of a real image, not an empty canvas.
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200, (name, width, height)
        assert f"]({name})" in text


def test_caller_table_comes_first(report):
    _, text = report
    assert text.startswith("# KL off vs cosine\n\n| model | accuracy |\n|---|---|\n| SFT | 0.55 |\n| RL | 0.91 |")


def test_summary_has_first_last_best_and_steps(report):
    _, text = report
    # Overview: steps (the truncated step-4 line is not counted), final and best held-out accuracy.
    assert table_rows(text, "kl_off")[0][:4] == ["kl_off", "3", "0.875 (step 3)", "0.875 (step 3)"]
    assert table_rows(text, "kl_cosine")[0][:4] == ["kl_cosine", "3", "0.625 (step 3)", "0.625 (step 3)"]
    # Per-run tables, in run order: first/last skip nulls; best only where higher is better.
    accuracy_off, accuracy_cos = table_rows(text, "accuracy")
    assert accuracy_off == ["accuracy", "0.25 (step 1)", "0.75 (step 3)", "0.75 (step 3)"]
    assert accuracy_cos == ["accuracy", "0.5 (step 1)", "0.5 (step 3)", "0.625 (step 2)"]
    held_off = table_rows(text, "heldout/accuracy")[0]
    assert held_off == ["heldout/accuracy", "0.5 (step 0)", "0.875 (step 3)", "0.875 (step 3)"]
    length_off = table_rows(text, "response_length")[0]
    assert length_off == ["response_length", "30 (step 1)", "37 (step 3)", "—"]


def test_config_differences_list_only_differing_keys(report):
    _, text = report
    section = text.split("## Config differences")[1].split("## Figures")[0]
    assert table_rows(section, "key") == [["key", "kl_off", "kl_cosine"]]
    assert table_rows(section, "kl.mode") == [["kl.mode", "off", "cosine"]]
    assert table_rows(section, "kl.anneal_steps") == [["kl.anneal_steps", "(absent)", "3"]]
    assert table_rows(section, "run.output_dir") == [["run.output_dir", "runs/kl_off", "runs/kl_cosine"]]
    for equal in ("kl.coef", "run.seed", "optim.lr", "rollout.max_length_schedule", "rollout.temperature"):
        assert equal not in section


def test_figures_without_any_metric_are_left_out(tmp_path):
    # An SFT run logs loss, grad_norm and lr only: just the dynamics figure.
    rows = [{"step": s, "loss": 2.0 / s, "grad_norm": 1.0, "lr": 1e-3, "tokens": 500} for s in range(1, 5)]
    run = make_run(tmp_path, "sft", rows, None)
    text = write_report([run], tmp_path / "out", "SFT", smoothing=0.0).read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["dynamics.png"]
    assert "](dynamics.png)" in text and "accuracy.png" not in text
    assert "No config.yaml in: sft." in text
    assert table_rows(text, "sft")[0][1:3] == ["4", "—"]


def test_plot_run_metrics_skips_absent_metrics_and_draws_all_null_ones(tmp_path):
    runs = {"a": [{"step": 1, "kl": None}, {"step": 2, "kl": None}], "b": [{"step": 1}]}
    drawn = plot_run_metrics(runs, ["entropy", "kl"], tmp_path / "f.png", smoothing=0.6)
    assert drawn == ["kl"]
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC
    assert plot_run_metrics(runs, ["entropy"], tmp_path / "none.png") == []
    assert not (tmp_path / "none.png").exists()


def test_series_nulls_are_gaps_and_missing_keys_are_skipped():
    rows = [{"step": 0, "heldout/accuracy": 0.5}, {"step": 1, "accuracy": None}, {"step": 2, "accuracy": 1}]
    steps, values = series(rows, "accuracy")
    assert steps == [1, 2] and math.isnan(values[0]) and values[1] == 1.0
    with pytest.raises(ReportError, match="'accuracy' at step 3"):
        series([{"step": 3, "accuracy": "high"}], "accuracy")


def test_ema_is_debiased_and_keeps_gaps():
    # weight 0.5: 1 -> 1; then (0.25 + 1.5) / (0.25 + 0.5) = 7/3.
    out = ema([1.0, float("nan"), 3.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == pytest.approx(7 / 3)
    assert ema([2.0, 4.0], 0.0) == [2.0, 4.0]


def test_flatten_and_differences():
    flat = flatten_config({"kl": {"mode": "off", "coef": 0.1}, "schedule": [[0, 64]], "empty": {}})
    assert flat == {"kl.mode": "off", "kl.coef": 0.1, "schedule": [[0, 64]], "empty": {}}
    diffs = config_differences({"a": {"x": 1, "y": [1, 2]}, "b": {"x": 1, "y": [1, 3], "z": 0}})
    assert [k for k, _ in diffs] == ["y", "z"]


def test_labels_are_unique(tmp_path):
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "c"]) == ["a/run", "b/run", "c"]
    assert run_labels([tmp_path / "x", tmp_path / "x"]) == ["x (1)", "x (2)"]


def test_bad_caller_table_is_rejected(tmp_path):
    run = make_run(tmp_path, "r", [{"step": 1, "lr": 1.0}], None)
    with pytest.raises(ReportError, match="as many cells as the header"):
        write_report([run], tmp_path / "out", "t", table=[("a", "b"), ("only one",)])


def test_cli_names_a_run_without_metrics(tmp_path):
    good = make_run(tmp_path, "good", [{"step": 1, "lr": 1e-3}], None)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    result = CliRunner().invoke(app, ["report", str(good), str(empty), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{empty}: no metrics.jsonl" in result.stderr
    assert not (tmp_path / "out" / "report.md").exists()


def test_cli_writes_the_report_and_prints_its_path(tmp_path):
    run = make_run(tmp_path, "r", [{"step": 1, "lr": 1e-3}, {"step": 2, "lr": 5e-4}], None)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "out"), "--title", "One run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "out" / "report.md")
    assert (tmp_path / "out" / "report.md").read_text(encoding="utf-8").startswith("# One run\n")


def test_import_does_not_load_matplotlib():
    code = "import sys, slowthink.cli, slowthink.report; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # ~3 s: matplotlib figures
def test_length_hacking_section_names_the_run_and_steps(tmp_path):
    # Length 30 -> 88 over 30 steps at flat accuracy: the detector fires; the healthy run gains accuracy.
    hacking = make_run(tmp_path, "rrl", [train_row(s, 0.5, 30.0 + 2 * s, 0.0) for s in range(1, 31)], None)
    healthy = make_run(tmp_path, "plain", [train_row(s, 0.2 + 0.02 * s, 30.0 + 2 * s, 0.0) for s in range(1, 31)], None)
    text = write_report([hacking, healthy], tmp_path / "out", "RRL", smoothing=0.0).read_text(encoding="utf-8")
    section = text.split("## Length hacking")[1].split("##")[0]
    assert "**rrl**: WARNING, possible length hacking at steps 20-30" in section
    assert "**plain**: no warning" in section


# ------------------------------------------------------------------ a report that explains itself


def test_train_and_heldout_accuracy_say_how_they_were_sampled(report):
    _, text = report
    # The fixture's runs sample at T = 1 and evaluate greedily (train.eval_temperature's default).
    assert "![Accuracy and reward: train accuracy, sampled at T=1, held-out accuracy, greedy, mean reward](accuracy.png)" in text
    assert "held-out completion ratio, greedy" in text and "train completion ratio, sampled at T=1" in text
    assert "not the same measurement" in text


def test_sampling_labels_follow_the_configs():
    from slowthink.report import sampling_labels

    labels = sampling_labels([{"rollout.temperature": 0.6, "train.eval_temperature": 0.7}])
    assert labels["accuracy"] == "train accuracy, sampled at T=0.6"
    assert labels["heldout/accuracy"] == "held-out accuracy, sampled at T=0.7"
    mixed = sampling_labels([{"rollout.temperature": 1.0}, {"rollout.temperature": 0.8}, None])
    assert mixed["accuracy"] == "train accuracy, sampled rollouts"
    assert mixed["heldout/accuracy"] == "held-out accuracy, greedy"


def test_panels_that_carry_nothing_collapse_into_one_line(tmp_path):
    # No keyword ever seen, a KL coefficient that stays 0: said in words, not drawn flat.
    rows = [train_row(s, 0.5, 30.0, 0.0, **{"keywords/reflection": 0.0, "keywords/reflection_ratio": 0.0}) for s in (1, 2, 3)]
    run = make_run(tmp_path, "quiet", rows, None)
    out = tmp_path / "out"
    text = write_report([run], out, "quiet", smoothing=0.0).read_text(encoding="utf-8")
    assert "Not drawn, nothing to show: no reflection keyword seen." in text
    assert not (out / "keywords.png").exists() and "](keywords.png)" not in text
    assert "KL coefficient: 0 at every step" in text
    # Accuracy at 0 throughout is a result, not an empty panel: still drawn.
    zero = make_run(tmp_path, "zero", [train_row(s, 0.0, 30.0, 0.0) for s in (1, 2)], None)
    zero_text = write_report([zero], tmp_path / "zero_out", "zero", smoothing=0.0).read_text(encoding="utf-8")
    assert "](accuracy.png)" in zero_text
    assert not any("accuracy" in line for line in zero_text.splitlines() if line.startswith("Not drawn"))
    dynamics = text.split("### Training dynamics")[1].split("###")[0]
    assert "](dynamics.png)" in dynamics and "KL coefficient," not in dynamics and "entropy (nats/token)" in dynamics


@pytest.mark.slow  # ~2 s: matplotlib
def test_shares_are_drawn_on_a_fixed_zero_to_one_axis(tmp_path, monkeypatch):
    # 255 of 256 rollouts finished at one step: an autoscaled axis would draw 0.996 as a cliff.
    import matplotlib.figure

    limits = {}
    saved = matplotlib.figure.Figure.savefig

    def record(fig, *args, **kwargs):
        limits.update({ax.get_title(): ax.get_ylim() for ax in fig.axes if ax.get_visible()})
        return saved(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    rows = [{"step": s, "completion_ratio": 1.0 if s != 3 else 255 / 256, "entropy": 1.0 + 0.001 * s} for s in range(1, 6)]
    plot_run_metrics({"r": rows}, ["completion_ratio", "entropy"], tmp_path / "c.png")
    low, high = limits["train completion ratio"]
    assert low <= 0 and 1 <= high < 1.1
    low, high = limits["entropy (nats/token)"]
    assert high - low < 0.1  # other metrics keep their own scale


@pytest.mark.slow  # ~2 s: matplotlib
def test_the_sft_stage_loss_appears(tmp_path):
    sft = make_run(tmp_path, "sft", [{"step": s, "loss": 4.0 / s, "grad_norm": 2.0, "lr": 1e-3} for s in range(1, 6)], None)
    rl = make_run(tmp_path, "rl", [train_row(s, 0.2 * s, 30.0, 0.0) for s in (1, 2, 3)], None)
    out = tmp_path / "out"
    text = write_report([rl], out, "demo", smoothing=0.0, cold_start=sft).read_text(encoding="utf-8")
    section = text.split("### SFT cold start")[1].split("### ")[0]
    assert "](sft.png)" in section and "5 steps" in section
    assert table_rows(section, "loss") == [["loss", "4 (step 1)", "0.8 (step 5)"]]
    assert (out / "sft.png").read_bytes()[:8] == PNG_MAGIC
