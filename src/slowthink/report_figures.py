"""The report's figures: one PNG per figure, a subplot per metric over steps, a line per run.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

What a reader needs to read a curve is on it: how the values were sampled (train metrics
come from rollouts sampled at the run's temperature, held-out ones from greedy decoding
unless ``train.eval_temperature`` says otherwise), shares drawn on a fixed 0-1 axis (so one
truncated rollout out of 256 is not a cliff), and panels that would show nothing (a
keyword never seen, a KL coefficient that stays 0) left out and named in one line instead.

matplotlib (its Agg canvas) is imported inside the drawing function only, so importing this
module (and the ``slowthink`` command) stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slowthink.monitors.keywords import KEYWORD_CATEGORIES


class ReportError(ValueError):
    """A run directory that cannot be reported on (names the path and what is wrong)."""


# The standard figure set: file name -> (figure title, metric keys, subplot columns).
FIGURES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "accuracy.png": ("Accuracy and reward", ("accuracy", "heldout/accuracy", "reward"), 3),
    "length.png": (
        "Response length",
        ("response_length", "response_length_correct", "response_length_incorrect", "max_length", "heldout/response_length"),
        3,
    ),
    "completion.png": ("Completion ratio", ("completion_ratio", "heldout/completion_ratio"), 2),
    "keywords.png": (
        "Reasoning keywords",
        tuple(f"keywords/{c}" for c in KEYWORD_CATEGORIES) + tuple(f"keywords/{c}_ratio" for c in KEYWORD_CATEGORIES),
        len(KEYWORD_CATEGORIES),
    ),
    "dynamics.png": ("Training dynamics", ("entropy", "kl", "kl_coef", "clip_fraction", "grad_norm", "lr", "loss"), 3),
}

# Subplot titles; a key not listed is shown as it is.
LABELS: dict[str, str] = {
    "accuracy": "train accuracy",
    "heldout/accuracy": "held-out accuracy",
    "reward": "mean reward",
    "response_length": "response length (tokens)",
    "response_length_correct": "length of correct responses",
    "response_length_incorrect": "length of incorrect responses",
    "max_length": "max response length (schedule)",
    "heldout/response_length": "held-out response length",
    "completion_ratio": "train completion ratio",
    "heldout/completion_ratio": "held-out completion ratio",
    "entropy": "entropy (nats/token)",
    "kl": "KL to reference",
    "kl_coef": "KL coefficient",
    "clip_fraction": "clip fraction",
    "grad_norm": "grad norm (before clipping)",
    "lr": "learning rate",
    "loss": "SFT loss",
    **{f"keywords/{c}": f"{c}: keywords / response" for c in KEYWORD_CATEGORIES},
    **{f"keywords/{c}_ratio": f"{c}: share with any" for c in KEYWORD_CATEGORIES},
}

# Runs differ by colour and dash, so identical curves (a shared schedule) stay visible.
LINESTYLES = ("-", "--", "-.", ":")
# Schedules are exact values, not noisy estimates: never smoothed.
NOT_SMOOTHED = frozenset({"kl_coef", "lr", "max_length"})
# Shares of rollouts or problems: drawn on a fixed 0-1 axis. matplotlib's autoscale would
# stretch 0.996 -> 1.0 (one truncated rollout of 256) over the whole panel height.
SHARES = frozenset(
    {"accuracy", "heldout/accuracy", "completion_ratio", "heldout/completion_ratio", *(f"keywords/{c}_ratio" for c in KEYWORD_CATEGORIES)}
)
# Never left out as "nothing to show", even when 0 throughout (see empty_metrics).
ALWAYS_DRAWN = frozenset(
    {"accuracy", "heldout/accuracy", "reward", "response_length", "heldout/response_length", "completion_ratio", "heldout/completion_ratio", "loss"}
)
# The metrics that come from sampled rollouts (train) or from the held-out evaluation.
TRAIN_SAMPLED = ("accuracy", "completion_ratio", "response_length")
HELDOUT = ("heldout/accuracy", "heldout/completion_ratio", "heldout/response_length")


def sampling_labels(configs: Sequence[Mapping[str, Any] | None]) -> dict[str, str]:
    """Titles that say how train and held-out metrics were sampled, from the runs' flattened
    configs: "train accuracy, sampled at T=1", "held-out accuracy, greedy"."""
    train_how, heldout_how = sampling(configs)
    labels = {key: f"{LABELS.get(key, key)}, {train_how}" for key in TRAIN_SAMPLED}
    labels.update({key: f"{LABELS.get(key, key)}, {heldout_how}" for key in HELDOUT})
    return labels


def sampling(configs: Sequence[Mapping[str, Any] | None]) -> tuple[str, str]:
    """How the runs' train and held-out metrics were sampled: ("sampled at T=1", "greedy")."""
    train = {c.get("rollout.temperature") for c in configs if c is not None}
    heldout = {c.get("train.eval_temperature", 0.0) for c in configs if c is not None}
    train_how = f"sampled at T={_number(next(iter(train)))}" if len(train) == 1 and None not in train else "sampled rollouts"
    if len(heldout) == 1 and None not in heldout:
        (t,) = heldout
        return train_how, "greedy" if t == 0 else f"sampled at T={_number(t)}"
    return train_how, "greedy unless train.eval_temperature > 0"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def empty_metrics(runs: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str]) -> dict[str, str]:
    """The keys logged by some run whose every value in every run is 0 or null (a flat line
    at 0, or nothing, better said in words than drawn): key -> "0" (some value, all 0) or
    "null" (no value at all, e.g. no update ran). The curves a run is judged by (accuracy,
    reward, length, completion) are always drawn: 0% throughout is a result to see."""
    empty = {}
    for key in keys:
        if key in ALWAYS_DRAWN:
            continue
        values = [v for rows in runs.values() for v in series(rows, key)[1]]
        if values and all(math.isnan(v) or v == 0 for v in values):
            empty[key] = "null" if all(math.isnan(v) for v in values) else "0"
    return empty


def nothing_drawn_line(empty: Mapping[str, str], labels: Mapping[str, str] | None = None) -> str:
    """One line for the panels left out: "no reflection keyword seen; KL coefficient: 0 at every step"."""
    said, parts = set(), []
    for key, kind in empty.items():
        category = key.removeprefix("keywords/").removesuffix("_ratio") if key.startswith("keywords/") else None
        if category is not None:
            if category not in said:
                said.add(category)
                parts.append(f"no {category} keyword seen")
        else:
            parts.append(f"{title_of(key, labels)}: " + ("0 at every step" if kind == "0" else "no value logged"))
    return "Not drawn, nothing to show: " + "; ".join(parts) + "."


def series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of one metric; a null is NaN (a gap), a row without the key is skipped.

    Held-out metrics are logged only every ``eval_every`` steps, so their rows are sparse
    by design and the line joins the evaluations that exist.
    """
    steps, values = [], []
    for row in rows:
        if key not in row:
            continue
        value = row[key]
        if value is not None and not isinstance(value, (int, float)):
            raise ReportError(f"metric {key!r} at step {row.get('step')} is not a number: {value!r}")
        steps.append(int(row["step"]))
        values.append(float("nan") if value is None else float(value))
    return steps, values


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Debiased exponential moving average (as TensorBoard's smoothing); NaNs stay gaps.

    ``weight`` is the share of the previous average kept at each step (0 = no smoothing).
    """
    out, average, norm = [], 0.0, 0.0
    for value in values:
        if math.isnan(value):
            out.append(float("nan"))
            continue
        average = weight * average + (1.0 - weight) * value
        norm = weight * norm + (1.0 - weight)
        out.append(average / norm)
    return out


def plot_run_metrics(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    keys: Sequence[str],
    out_path: Path,
    title: str | None = None,
    smoothing: float = 0.0,
    ncols: int = 3,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """One PNG, a subplot per metric over steps, a line per run; returns the keys drawn.

    Metrics absent from every run are skipped; when none is left no file is written.
    With ``smoothing`` > 0 noisy train metrics are drawn as an EMA over a faint raw line;
    held-out metrics (already averages over a whole set) and schedules are drawn as is.
    """
    present = [k for k in keys if any(series(rows, k)[0] for rows in runs.values())]
    if not present:
        return []
    # The Agg canvas directly, not pyplot: no global backend switch (which would close a
    # notebook's open figures) and no figure registry to leak from.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    cols = max(1, min(ncols, len(present)))
    nrows = math.ceil(len(present) / cols)
    fig = Figure(figsize=(4.4 * cols, 2.9 * nrows + 1.1))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, cols, squeeze=False)
    drawn_runs: dict[str, tuple[str, str]] = {}
    for ax, key in zip(axes.flat, present):
        for i, (label, rows) in enumerate(runs.items()):
            steps, values = series(rows, key)
            if steps:
                style = (f"C{i % 10}", LINESTYLES[i % len(LINESTYLES)])
                _draw(ax, steps, values, style, smooth=_smoothing_for(key, smoothing))
                drawn_runs[label] = style
        ax.set_title(title_of(key, labels), fontsize=10)
        if key in SHARES:
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.set_visible(False)
    # One legend for the whole figure, below the plots: every subplot has the same runs.
    handles = [Line2D([], [], color=color, linestyle=dash, linewidth=1.8) for color, dash in drawn_runs.values()]
    legend_rows = math.ceil(len(handles) / 4)
    fig.legend(handles, list(drawn_runs), loc="lower center", ncol=min(len(handles), 4), frameon=False)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.12 / fig.get_size_inches()[1], va="top")
    # Fixed margins in inches: tight_layout gives the same look here at ~3x the cost.
    width, height = fig.get_size_inches()
    top, bottom = (0.75 if title else 0.35), 0.55 + 0.28 * legend_rows
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.25 / width, top=1 - top / height, bottom=bottom / height, wspace=0.3, hspace=0.5)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    return present


def title_of(key: str, labels: Mapping[str, str] | None = None) -> str:
    """A subplot's title: ``labels`` (e.g. ``sampling_labels``), else LABELS, else the key."""
    return (labels or {}).get(key) or LABELS.get(key, key)


def _smoothing_for(key: str, smoothing: float) -> float:
    return 0.0 if key.startswith("heldout/") or key in NOT_SMOOTHED else smoothing


def _draw(ax: Any, steps: list[int], values: list[float], style: tuple[str, str], smooth: float) -> None:
    """Draw one run's line: an EMA over a faint raw line when smoothing, else the raw values."""
    color, linestyle = style
    # Sparse series (held-out evaluations, short runs) get markers so a lone point shows.
    marker = "o" if len(steps) <= 30 else None
    if smooth > 0:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=1.0)
        values = ema(values, smooth)
    ax.plot(steps, values, color=color, linestyle=linestyle, linewidth=1.7, marker=marker, markersize=3)
