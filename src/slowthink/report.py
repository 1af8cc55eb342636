"""Run reports: the paper's training-curve figures and a side-by-side comparison of runs.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

The paper reads its findings off a handful of curves over RL steps (STILL-3, section 3.2
and Figures 1-7): train and test accuracy, response length (all / correct / incorrect,
Table 4), completion ratio, reasoning-keyword frequency (Figure 4), and the training
dynamics behind them (entropy, KL to the reference and its coefficient, section 4.3).
``write_report`` draws those curves for one or more run directories (each written by
``slowthink rl`` / ``slowthink sft``: ``config.yaml`` + ``metrics.jsonl``) into PNGs and a
``report.md`` with a summary per run and the config keys in which the runs differ, which
is how an ablation (e.g. KL off vs cosine-annealed KL) is read.

The figures themselves (titles, axes, what is left out) are drawn by ``report_figures``;
matplotlib is imported there, inside the drawing function only, so importing this module
(and the ``slowthink`` command) stays cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slowthink.monitors.length_hacking import HackingSettings, hacking_episodes, hacking_steps
from slowthink.report_figures import (  # noqa: F401  (ema, plot_run_metrics, series: re-exported)
    FIGURES,
    ReportError,
    ema,
    empty_metrics,
    nothing_drawn_line,
    plot_run_metrics,
    sampling,
    sampling_labels,
    series,
    title_of,
)
from slowthink.samples import sample_section
from slowthink.tracking import read_metrics

# The per-run table: these metrics, with a "best" where higher is better.
SUMMARY_KEYS = (
    "heldout/accuracy",
    "accuracy",
    "reward",
    "response_length",
    "completion_ratio",
    "heldout/response_length",
    "entropy",
    "kl",
)
# The SFT stage's figure (its metrics.jsonl rows: loss, grad_norm, lr per step).
SFT_KEYS = ("loss", "grad_norm", "lr")
HIGHER_IS_BETTER = frozenset({"heldout/accuracy", "accuracy", "reward", "completion_ratio", "heldout/completion_ratio"})


@dataclass(frozen=True)
class Run:
    """One run directory: its label in figures and tables, metric rows and flattened config."""

    label: str
    path: Path
    rows: list[dict[str, Any]]
    config: dict[str, Any] | None


def load_run(path: Path, label: str) -> Run:
    """Read ``metrics.jsonl`` (required) and ``config.yaml`` (optional) of a run directory."""
    metrics_path = Path(path) / "metrics.jsonl"
    if not metrics_path.is_file():
        raise ReportError(f"{path}: no metrics.jsonl (is this a run directory written by 'slowthink rl' or 'slowthink sft'?)")
    rows = read_metrics(metrics_path)
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ReportError(f"{metrics_path}: row {i} has no integer 'step': {json.dumps(row)[:120]}")
    config_path = Path(path) / "config.yaml"
    config = None
    if config_path.is_file():
        tree = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        if not isinstance(tree, dict):
            raise ReportError(f"{config_path}: expected a mapping at the top level, got {type(tree).__name__}")
        config = flatten_config(tree)
    return Run(label=label, path=Path(path), rows=rows, config=config)


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short, unique labels: the directory name, with its parent when two names collide."""
    resolved = [Path(p).resolve() for p in paths]
    labels = [p.name for p in resolved]
    clash = {label for label in labels if len({p for p, other in zip(resolved, labels) if other == label}) > 1}
    labels = [("/".join(p.parts[-2:]) if label in clash else label) for p, label in zip(resolved, labels)]
    # Still equal (the same directory twice): number them.
    return [f"{label} ({i + 1})" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def flatten_config(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"kl.mode": "cosine", ...}``; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


_ABSENT = object()


def config_differences(configs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
    """The flattened keys whose values are not equal in every run (absent counts as a value)."""
    keys = sorted(set().union(*(c.keys() for c in configs.values()))) if configs else []
    diffs = []
    for key in keys:
        values = [c.get(key, _ABSENT) for c in configs.values()]
        if any(v != values[0] for v in values[1:]):
            diffs.append((key, values))
    return diffs


def summarize(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """First, last and (where higher is better) best non-null value of a metric, with steps."""
    points = [(s, v) for s, v in zip(*series(rows, key)) if not math.isnan(v)]
    if not points:
        return None
    summary = {"first": points[0][1], "first_step": points[0][0], "last": points[-1][1], "last_step": points[-1][0]}
    if key in HIGHER_IS_BETTER:
        best_step, best = max(points, key=lambda p: p[1])
        summary.update(best=best, best_step=best_step)
    return summary


def fmt(value: Any) -> str:
    """A table cell: numbers to 4 significant digits, null/NaN as a dash, pipes escaped."""
    if value is _ABSENT:
        return "(absent)"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def overview_table(runs: Sequence[Run]) -> str:
    """One row per run: steps and the final values the paper compares runs by."""
    header = ("run", "steps", "final held-out acc", "best held-out acc", "final train acc", "final length", "final completion")
    rows = []
    for run in runs:
        held = summarize(run.rows, "heldout/accuracy")
        final = {k: summarize(run.rows, k) for k in ("accuracy", "response_length", "completion_ratio")}
        rows.append(
            (
                run.label,
                max((r["step"] for r in run.rows), default=0),
                f"{fmt(held['last'])} (step {held['last_step']})" if held else None,
                f"{fmt(held['best'])} (step {held['best_step']})" if held else None,
                *(s["last"] if s else None for s in final.values()),
            )
        )
    return markdown_table(header, rows)


def run_table(run: Run) -> str:
    """First / last / best of the key metrics of one run."""
    rows = []
    # Each reward component (built-in or reward.functions) as it was logged: reward/NAME.
    components = sorted({k for row in run.rows for k in row if k.startswith("reward/")})
    for key in (*SUMMARY_KEYS, *components):
        s = summarize(run.rows, key)
        if s is not None:
            best = f"{fmt(s['best'])} (step {s['best_step']})" if "best" in s else None
            rows.append((key, f"{fmt(s['first'])} (step {s['first_step']})", f"{fmt(s['last'])} (step {s['last_step']})", best))
    if not rows:
        return "_No summary metrics logged._"
    return markdown_table(("metric", "first", "last", "best"), rows)


def config_section(runs: Sequence[Run]) -> str:
    """The config keys whose values differ between runs, one column per run."""
    with_config = [r for r in runs if r.config is not None]
    missing = [r.label for r in runs if r.config is None]
    note = f"\n\nNo config.yaml in: {', '.join(missing)}." if missing else ""
    if len(with_config) < 2:
        return "Only one run with a config.yaml: nothing to compare." + note
    diffs = config_differences({r.label: r.config for r in with_config})
    if not diffs:
        return "The configs are identical." + note
    return markdown_table(("key", *(r.label for r in with_config)), [(k, *v) for k, v in diffs]) + note


def hacking_section(runs: Sequence[Run]) -> str:
    """Where the length-hacking detector fired (length rising, accuracy flat; sections 4.2.2, 5)."""
    lines = []
    for run in runs:
        if not any("response_length" in row for row in run.rows):
            continue  # an SFT run: no rollouts
        spans = hacking_episodes(hacking_steps(run.rows))
        where = ", ".join(f"steps {a}-{b}" if a != b else f"step {a}" for a, b in spans)
        lines.append(f"- **{run.label}**: " + (f"WARNING, possible length hacking at {where}" if spans else "no warning"))
    if not lines:
        return "No RL runs (no response lengths logged)."
    settings = HackingSettings()
    return (
        f"Response length rising over a {settings.window}-step window while train accuracy stays flat or falls "
        f"over it and the {settings.follow} steps after (the step named is when that was seen):\n\n" + "\n".join(lines)
    )


def figure_section(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    keys: Sequence[str],
    path: Path,
    title: str,
    smoothing: float,
    ncols: int,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """One figure's part of report.md: the PNG (its panels named in the alt text), and one
    line for the panels left out because they would show nothing."""
    empty = empty_metrics(runs, keys)
    drawn = plot_run_metrics(runs, [k for k in keys if k not in empty], path, title=title, smoothing=smoothing, ncols=ncols, labels=labels)
    parts = [f"### {title}"] if drawn or empty else []
    if drawn:
        parts.append(f"![{title}: {', '.join(title_of(k, labels) for k in drawn)}]({path.name})")
    if empty:
        parts.append(nothing_drawn_line(empty, labels))
    return parts


def cold_start_section(sft_dir: Path, out_dir: Path, smoothing: float) -> list[str]:
    """The SFT stage the RL run started from: its loss curve and first / last values."""
    run = load_run(sft_dir, sft_dir.name)
    parts = ["### SFT cold start", f"`{sft_dir}`: {len(run.rows)} steps."]
    parts += figure_section({run.label: run.rows}, SFT_KEYS, out_dir / "sft.png", "SFT cold start", smoothing, len(SFT_KEYS))[1:]
    rows = [
        (key, f"{fmt(s['first'])} (step {s['first_step']})", f"{fmt(s['last'])} (step {s['last_step']})")
        for key in SFT_KEYS
        if (s := summarize(run.rows, key))
    ]
    if rows:
        parts.append(markdown_table(("metric", "first", "last"), rows))
    return parts


def write_report(
    run_dirs: Sequence[Path],
    out_dir: Path,
    title: str = "slowthink report",
    table: Sequence[tuple[str, ...]] | None = None,
    smoothing: float = 0.6,
    cold_start: Path | None = None,
) -> Path:
    """Write the standard figures and ``report.md`` for one or more runs; returns report.md's path.

    ``table`` (header row first) is placed at the top, e.g. the demo's before/after numbers.
    ``cold_start``: the SFT run the RL runs started from; its loss gets a figure and a table.
    """
    if not run_dirs:
        raise ReportError("no run directories given")
    if table is not None and (not table or any(len(r) != len(table[0]) for r in table)):
        raise ReportError(f"table: every row must have as many cells as the header ({len(table[0]) if table else 0})")
    runs = [load_run(Path(p), label) for p, label in zip(run_dirs, run_labels(run_dirs))]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}"]
    if table is not None:
        parts.append(markdown_table(table[0], table[1:]))
    parts.append("Runs:\n\n" + "\n".join(f"- **{r.label}**: `{r.path}` ({len(r.rows)} rows)" for r in runs))
    parts += ["## Summary", overview_table(runs), "## Length hacking", hacking_section(runs)]
    parts += ["## Config differences", config_section(runs), "## Figures"]
    by_label = {r.label: r.rows for r in runs}
    labels = sampling_labels([r.config for r in runs])
    if any(k in row for r in runs for row in r.rows for k in ("accuracy", "heldout/accuracy")):
        train_how, heldout_how = sampling([r.config for r in runs])
        parts.append(
            f"Train metrics come from the step's rollouts ({train_how}); held-out metrics from the held-out "
            f"evaluation ({heldout_how}), so the two accuracies are not the same measurement. "
            "Shares (accuracy, completion ratio) are drawn on a fixed 0-1 axis."
        )
    if cold_start is not None:
        parts += cold_start_section(Path(cold_start), out_dir, smoothing)
    for name, (fig_title, keys, ncols) in FIGURES.items():
        parts += figure_section(by_label, keys, out_dir / name, fig_title, smoothing, ncols, labels)
    if smoothing > 0:
        parts.append(f"Train metrics are smoothed (EMA, weight {smoothing}); the faint lines are the raw values.")
    parts.append("## Per-run details")
    parts += [f"### {r.label}\n\n`{r.path}`\n\n{run_table(r)}" for r in runs]
    # What the model wrote, first and last logged step (RL runs with train.log_samples_every).
    parts += [section for r in runs if (section := sample_section(r.path))]
    report_path = out_dir / "report.md"
    report_path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return report_path
