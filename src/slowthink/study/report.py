"""The study report: per factor, the arms overlaid, each claim with its measured difference
and verdict, and where the length-hacking detector fired; ``report.md`` + PNGs and a
self-contained ``report.html`` (figures embedded as base64).

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

Curves of an arm are the mean over its seeds at each step (the per-seed values are in
the run directories); the claims are judged per seed (slowthink.study.verdict).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slowthink.length_hacking import hacking_episodes, hacking_steps
from slowthink.report import fmt, markdown_table, plot_run_metrics
from slowthink.study.config import StudyConfig
from slowthink.study.plan import Plan
from slowthink.study.runner import StudyOutcome, read_done
from slowthink.study.verdict import ClaimResult, final_value, judge
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


def claim_text(claim) -> str:
    words = {"higher": "higher than", "lower": "lower than", "not_higher": "not higher than", "not_lower": "not lower than"}
    window = f" (mean of the last {claim.window} logged values)" if claim.window > 1 else " (final value)"
    return f"{claim.metric}{window}: {claim.arm} {words[claim.direction]} {claim.than}" + (f" [{claim.source}]" if claim.source else "")


def factor_blocks(name: str, study: StudyConfig, plan: Plan, figures: Path) -> tuple[list[Block], list[tuple[str, str]]]:
    """The report section of one factor, and (claim, verdict) pairs for the summary."""
    factor = study.factors[name]
    blocks: list[Block] = [("h2", f"Factor: {name}")]
    if factor.description:
        blocks.append(("p", factor.description))
    rows = {arm: {seed: load_rows(plan.runs[plan.arms[(name, arm, seed)]].run_dir) for seed in study.seeds} for arm in factor.arms}
    arm_table = [
        (arm, "; ".join(overrides) or "(base config)", ", ".join(plan.arms[(name, arm, seed)] for seed in study.seeds))
        for arm, overrides in factor.arms.items()
    ]
    blocks.append(("table", (("arm", "overrides", "run directories"), arm_table)))
    curves = {arm: mean_rows([r for r in rows[arm].values() if r], STUDY_KEYS) for arm in factor.arms}
    figure = figures / f"{name}.png"
    if plot_run_metrics(curves, STUDY_KEYS, figure, title=f"{name}: arms overlaid (mean over {len(study.seeds)} seeds)", smoothing=0.6, ncols=4):
        blocks.append(("img", (f"{name}: arms overlaid", figure)))
    summary = []
    for claim in factor.claims:
        diffs = {
            seed: final_value(rows[claim.arm][seed], claim.metric, claim.window) - final_value(rows[claim.than][seed], claim.metric, claim.window)
            for seed in study.seeds
        }
        result = judge(claim.direction, diffs, study.verdict.spread_multiple, study.verdict.min_effect)
        blocks.append(("p", f"**Claim**: {claim_text(claim)}. **Verdict: {result.verdict}** ({result.reason})."))
        blocks.append(("table", result_table(result, claim, rows)))
        summary.append((f"{name}: {claim_text(claim)}", result.verdict))
    if not factor.claims:
        blocks.append(("p", "No claim stated for this factor: the curves only."))
    blocks.append(("p", hacking_line(rows)))
    return blocks, summary


def result_table(result: ClaimResult, claim, rows) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    body = [
        (
            f"seed {seed}",
            final_value(rows[claim.arm][seed], claim.metric, claim.window),
            final_value(rows[claim.than][seed], claim.metric, claim.window),
            d,
        )
        for seed, d in result.diffs.items()
    ]
    body.append(("mean ± std", "", "", f"{fmt(result.mean)} ± {fmt(result.std)} (threshold {fmt(result.margin)})"))
    return (("", claim.arm, claim.than, "difference"), body)


def hacking_line(rows: Mapping[str, Mapping[int, list]]) -> str:
    fired = []
    for arm, seeds in rows.items():
        for seed, run_rows in seeds.items():
            spans = hacking_episodes(hacking_steps(run_rows))
            if spans:
                fired.append(f"{arm} (seed {seed}: steps " + ", ".join(f"{a}-{b}" for a, b in spans) + ")")
    return "**Length hacking** (length rising, accuracy flat; sections 4.2.2, 5): " + ("; ".join(fired) if fired else "no warning in any arm.")


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
    facts.append(
        f"Verdict rule: for each seed, difference = value(arm) - value(other arm); a difference counts when "
        f"|mean over seeds| > {study.verdict.spread_multiple:g} x std over seeds (and > {study.verdict.min_effect:g}). "
        "higher/lower: held if it counts in the claimed direction, reversed if it counts the other way, else inconclusive; "
        "not_higher/not_lower: reversed if it counts in the excluded direction, else held."
    )
    blocks += [("p", f) for f in facts]
    missing = [job.name for job in plan.runs.values() if not load_rows(job.run_dir)]
    if outcome is not None and outcome.failed:
        blocks.append(("p", "**Failed runs**: " + "; ".join(f"{k}: {v}" for k, v in outcome.failed.items())))
    if missing:
        blocks.append(("p", f"**Runs without metrics yet** ({len(missing)}): their arms' verdicts are inconclusive: " + ", ".join(missing)))
    sections, summary = [], []
    for name in study.factors:
        factor_section, claims = factor_blocks(name, study, plan, figures)
        sections += factor_section
        summary += claims
    blocks += [("h2", "Verdicts"), ("table", (("claim", "verdict"), summary)), *sections]
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
