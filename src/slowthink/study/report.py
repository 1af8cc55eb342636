"""The study report: per factor, the arms overlaid, each claim with its measured difference
and verdict, and where the length-hacking detector fired; ``report.md`` + PNGs and a
self-contained ``report.html`` (figures embedded as base64).

Curves of an arm are the mean over its seeds at each step (the per-seed values are in
the run directories); the claims are judged per seed (slowthink.study.verdict).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from slowthink.monitors.length_hacking import hacking_episodes, hacking_steps
from slowthink.report import fmt, markdown_table, plot_run_metrics
from slowthink.study.config import ClaimConfig, StudyConfig
from slowthink.study.plan import Plan
from slowthink.study.runner import StudyOutcome, read_done
from slowthink.study.verdict import MAX_SEEDS, ClaimResult, explain, judge_claims, value_and_se
from slowthink.tracking import read_metrics

# The curves the paper compares arms by (section 3.2, Figures 1-7).
STUDY_KEYS = ("heldout/accuracy", "accuracy", "response_length", "completion_ratio", "keywords/reflection", "entropy", "kl", "reward")
Block = tuple[str, Any]  # ("h1" | "h2" | "p" | "table" | "img", content)


def mean_rows(runs: Sequence[Sequence[Mapping[str, Any]]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Seed-averaged metric rows: at each step, the mean of the values the seeds logged."""
    by_step: dict[int, dict[str, list[float]]] = {}
    for rows in runs:
        for row in rows:
            for key in keys:
                value = row.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    by_step.setdefault(int(row["step"]), {}).setdefault(key, []).append(float(value))
    return [{"step": step, **{k: sum(v) / len(v) for k, v in values.items()}} for step, values in sorted(by_step.items())]


def load_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return read_metrics(path) if path.is_file() else []


def claim_text(claim, window: int) -> str:
    words = {"higher": "higher than", "lower": "lower than", "not_higher": "not higher than", "not_lower": "not lower than"}
    value = f" (mean of the last {window} logged values)" if window > 1 else " (final value)"
    return f"{claim.metric}{value}: {claim.arm} {words[claim.direction]} {claim.than}" + (f" [{claim.source}]" if claim.source else "")


def in_units(metric: str):
    """Formats an effect of ``metric`` for the report: accuracies and ratios in points."""
    points = metric.endswith("accuracy") or metric.endswith("_ratio")

    def units(rule, value: float) -> str:
        if value is None or math.isnan(value):
            return "n/a"
        return f"{value * 100:.2g} points" if points else f"{value:.3g}"

    return units


@dataclass(frozen=True)
class JudgedClaim:
    """One claim of the grid with the per-seed values it was judged on."""

    factor: str
    claim: ClaimConfig
    window: int
    values: dict[str, dict[int, tuple[float, float]]]  # arm -> seed -> (value, standard error)
    result: ClaimResult


def judge_study(study: StudyConfig, rows: Mapping[str, Mapping[str, Mapping[int, list]]]) -> list[JudgedClaim]:
    """Every claim of the grid, judged together (Holm across all of them unless verdict.adjust=none).

    ``rows``: factor -> arm -> seed -> that run's metric rows."""
    found, inputs = [], []
    for name, factor in study.factors.items():
        for claim in factor.claims:
            window = study.verdict.window_of(claim)
            values = {
                arm: {seed: value_and_se(rows[name][arm][seed], claim.metric, window) for seed in study.seeds} for arm in (claim.arm, claim.than)
            }
            diffs = {seed: values[claim.arm][seed][0] - values[claim.than][seed][0] for seed in study.seeds}
            # A difference is measured no better than its two values: their errors add in quadrature.
            errors = {seed: math.hypot(values[claim.arm][seed][1], values[claim.than][seed][1]) for seed in study.seeds}
            found.append((name, claim, window, values))
            inputs.append((study.verdict.rule(claim), diffs, errors))
    results = judge_claims(inputs, adjust=study.verdict.adjust == "holm")
    # The reasons are worded in the metric's units (points for accuracies).
    return [JudgedClaim(name, claim, window, values, _worded(result, claim.metric)) for (name, claim, window, values), result in zip(found, results)]


def _worded(result: ClaimResult, metric: str) -> ClaimResult:
    return replace(result, reason=explain(result, in_units(metric)))


def factor_blocks(name: str, study: StudyConfig, plan: Plan, figures: Path, rows, judged: Sequence[JudgedClaim]) -> list[Block]:
    """The report section of one factor."""
    factor = study.factors[name]
    blocks: list[Block] = [("h2", f"Factor: {name}")]
    if factor.description:
        blocks.append(("p", factor.description))
    arm_table = [
        (arm, "; ".join(overrides) or "(base config)", ", ".join(plan.arms[(name, arm, seed)] for seed in study.seeds))
        for arm, overrides in factor.arms.items()
    ]
    blocks.append(("table", (("arm", "overrides", "run directories"), arm_table)))
    curves = {arm: mean_rows([r for r in rows[arm].values() if r], STUDY_KEYS) for arm in factor.arms}
    figure = figures / f"{name}.png"
    if plot_run_metrics(curves, STUDY_KEYS, figure, title=f"{name}: arms overlaid (mean over {len(study.seeds)} seeds)", smoothing=0.6, ncols=4):
        blocks.append(("img", (f"{name}: arms overlaid", figure)))
    for item in judged:
        if item.factor != name:
            continue
        blocks.append(("p", f"**Claim**: {claim_text(item.claim, item.window)}. **Verdict: {item.result.verdict}** ({item.result.reason})."))
        blocks.append(("table", result_table(item)))
    if not factor.claims:
        blocks.append(("p", "No claim stated for this factor: the curves only."))
    blocks.append(("p", hacking_line(rows)))
    return blocks


def value_text(value: tuple[float, float]) -> str:
    mean_, se = value
    return fmt(mean_) + (f" ± {fmt(se)}" if not math.isnan(se) else "")


def result_table(item: JudgedClaim) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Per seed: each arm's value ± its standard error and the difference; then the interval,
    the raw and adjusted p-values and the power figures."""
    claim, result = item.claim, item.result
    body: list[tuple[Any, ...]] = [
        (f"seed {seed}", value_text(item.values[claim.arm][seed]), value_text(item.values[claim.than][seed]), d) for seed, d in result.diffs.items()
    ]
    rule, units = result.rule, in_units(claim.metric)
    body.append((f"mean, {rule.level * 100:g}% interval", "", "", f"{fmt(result.mean)} [{fmt(result.low)}, {fmt(result.high)}]"))
    body.append(("p raw / Holm-adjusted", "", "", f"{fmt(result.p)} / {fmt(result.p_adjusted)}"))
    thresholds = f"min_effect {units(rule, rule.min_effect)}" + (f", margin {units(rule, rule.margin)}" if rule.margin is not None else "")
    needed = str(result.seeds_needed) if result.seeds_needed is not None else f"> {MAX_SEEDS}"
    body.append(("detectable / seeds needed", "", "", f"{units(rule, result.mde)} / {needed} for {units(rule, rule.target_effect)} ({thresholds})"))
    return (("", claim.arm, claim.than, "difference"), body)


def hacking_line(rows: Mapping[str, Mapping[int, list]]) -> str:
    fired = []
    for arm, seeds in rows.items():
        for seed, run_rows in seeds.items():
            spans = hacking_episodes(hacking_steps(run_rows))
            if spans:
                fired.append(f"{arm} (seed {seed}: steps " + ", ".join(f"{a}-{b}" for a, b in spans) + ")")
    return "**Length hacking** (length rising, accuracy flat; sections 4.2.2, 5): " + ("; ".join(fired) if fired else "no warning in any arm.")


def rule_text(study: StudyConfig) -> str:
    """The verdict rule in one paragraph, with this grid's level and adjustment."""
    v = study.verdict
    adjust = "Holm-adjusted across the grid's claims" if v.adjust == "holm" else "not adjusted across claims"
    return (
        f"Verdict rule (docs/study.md): per seed, difference = value(arm) - value(other arm), a run's value being the mean of its last "
        f"{v.window} logged values unless the claim says otherwise; a t-based {v.level * 100:g}% interval over the seeds; p-values {adjust}. "
        "higher/lower: held when the interval lies wholly on the claimed side and the mean reaches min_effect, reversed when wholly on the "
        "other side, else inconclusive. not_higher/not_lower: held only when the interval's bound clears the claim's margin, reversed when "
        f"the effect is shown in the excluded direction, else inconclusive. 'detectable': the effect these seeds detect with {v.power * 100:g}% "
        "power at the observed spread."
    )


def write_study_report(
    study: StudyConfig, plan: Plan, outcome: StudyOutcome | None, report_dir: Path, command: str = "", wall_s: float | None = None
) -> tuple[Path, Path]:
    """Write report.md (+ figures/) and report.html; returns both paths."""
    report_dir = Path(report_dir)
    figures = report_dir / "figures"
    blocks: list[Block] = [("h1", study.title)]
    run_seconds = [d["wall_s"] for job in [*plan.cold_starts.values(), *plan.runs.values()] if (d := read_done(job.run_dir))]
    facts = [
        f"Seeds: {', '.join(map(str, study.seeds))}; {len(plan.runs)} RL runs and {len(plan.cold_starts)} cold starts; "
        f"{len(run_seconds)} finished, {sum(run_seconds) / 60:.1f} min of run time in all."
    ]
    if command:
        facts.append(f"Command: `{command}`" + (f" (this invocation: {wall_s / 60:.1f} min wall time)" if wall_s is not None else ""))
    facts.append(rule_text(study))
    blocks += [("p", f) for f in facts]
    missing = [job.name for job in plan.runs.values() if not load_rows(job.run_dir)]
    if outcome is not None and outcome.failed:
        blocks.append(("p", "**Failed runs**: " + "; ".join(f"{k}: {v}" for k, v in outcome.failed.items())))
    if missing:
        blocks.append(("p", f"**Runs without metrics yet** ({len(missing)}): their arms' verdicts are inconclusive: " + ", ".join(missing)))
    loaded: dict[str, list] = {}

    def rows_of(job_name: str) -> list:
        if job_name not in loaded:
            loaded[job_name] = load_rows(plan.runs[job_name].run_dir)
        return loaded[job_name]

    rows = {
        name: {arm: {seed: rows_of(plan.arms[(name, arm, seed)]) for seed in study.seeds} for arm in factor.arms}
        for name, factor in study.factors.items()
    }
    judged = judge_study(study, rows)
    summary = [
        (
            f"{item.factor}: {claim_text(item.claim, item.window)}",
            f"{fmt(item.result.mean)} [{fmt(item.result.low)}, {fmt(item.result.high)}]",
            f"{fmt(item.result.p)} / {fmt(item.result.p_adjusted)}",
            in_units(item.claim.metric)(item.result.rule, item.result.mde),
            item.result.verdict,
        )
        for item in judged
    ]
    sections = [block for name in study.factors for block in factor_blocks(name, study, plan, figures, rows[name], judged)]
    header = ("claim", f"difference [{study.verdict.level * 100:g}% interval]", "p raw / adjusted", "detectable", "verdict")
    blocks += [("h2", "Verdicts"), ("table", (header, summary)), *sections]
    report_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = report_dir / "report.md", report_dir / "report.html"
    md_path.write_text(to_markdown(blocks, report_dir), encoding="utf-8")
    html_path.write_text(to_html(blocks), encoding="utf-8")
    return md_path, html_path


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    parts = []
    for kind, content in blocks:
        if kind == "h1":
            parts.append(f"# {content}")
        elif kind == "h2":
            parts.append(f"## {content}")
        elif kind == "p":
            parts.append(content)
        elif kind == "table":
            parts.append(markdown_table(*content))
        elif kind == "img":
            title, path = content
            parts.append(f"![{title}]({Path(path).relative_to(base)})")
    return "\n\n".join(parts) + "\n"


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in escaped HTML (the only inline markup the report uses)."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(blocks: Sequence[Block]) -> str:
    """One HTML file with every figure inlined: it can be mailed or attached as it is."""
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(content)}</p>")
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{html.escape(fmt(h))}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{_inline(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{head}</tr>{cells}</table>")
        elif kind == "img":
            title, path = content
            data = base64.b64encode(Path(path).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
    style = "body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}"
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>study report</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
