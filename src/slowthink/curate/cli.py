"""The ``slowthink curate`` command."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer


def curate_cli(
    sources: List[str] = typer.Argument(..., help="JSONL files of {problem, answer} rows, or hf:NAME[:SPLIT] (needs 'datasets')."),
    out: Path = typer.Option(..., "--out", help="The pool: one JSONL file (written atomically when done)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Markdown report (default: OUT with .md)."),
    benchmark: Optional[List[Path]] = typer.Option(None, "--benchmark", help="Benchmark JSONL to decontaminate against (repeatable)."),
    skip: Optional[List[str]] = typer.Option(None, "--skip", help="Leave a filter out (repeatable), e.g. --skip near_duplicate."),
    contamination_threshold: float = typer.Option(0.5, help="Share of a row's n-grams found in a benchmark that marks it contaminated."),
    ngram: int = typer.Option(8, help="n of the decontamination n-grams (normalised tokens)."),
    near_duplicate_threshold: float = typer.Option(0.8, help="MinHash Jaccard at or above which a row is a near duplicate."),
    problem_key: str = typer.Option("problem", help="Field with the problem text."),
    answer_key: str = typer.Option("answer", help="Field with the gold answer."),
    difficulty_model: Optional[str] = typer.Option(None, help="Model (path or 'tiny') whose pass rate drops always/never solved rows."),
    samples: int = typer.Option(8, help="Difficulty: samples per problem (k)."),
    max_new_tokens: int = typer.Option(1024, help="Difficulty: tokens per sample."),
    template: str = typer.Option("chat", help="Difficulty: prompt template."),
    checker: str = typer.Option("math", help="Difficulty: 'math' (math-verify) or 'exact'."),
) -> None:
    """Build an RL training pool: question-type, answer, duplicate, contamination and difficulty filters (paper section 2)."""
    from slowthink.config import build_config
    from slowthink.curate.pipeline import CurateSettings, curate
    from slowthink.curate.report import curation_report
    from slowthink.recipes.cli_train import USER_ERRORS, fail

    started = time.perf_counter()
    try:
        settings = build_config(CurateSettings, dict(
            skip=list(skip or []), contamination_threshold=contamination_threshold, ngram=ngram,
            near_duplicate_threshold=near_duplicate_threshold, problem_key=problem_key, answer_key=answer_key,
        ), source="options")
        difficulty = build_difficulty(difficulty_model, samples, max_new_tokens, template, checker) if difficulty_model else None
        stats = curate(list(sources), out, settings, [str(b) for b in benchmark or []], difficulty)
    except USER_ERRORS as exc:
        fail(str(exc))
    command = "slowthink curate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    notes = [f"Benchmarks (decontamination targets): {', '.join(Path(b).stem for b in benchmark or []) or 'none'}.",
             f"Difficulty filter: {difficulty_model or 'off'}. Wall time {time.perf_counter() - started:.0f} s."]
    report_path = report or out.with_suffix(".md")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(curation_report(stats, "Curation report", command, notes), encoding="utf-8")
    print(f"kept {stats.kept} of {stats.read} rows -> {out}; report {report_path}")


def build_difficulty(model_path: str, samples: int, max_new_tokens: int, template: str, checker: str):
    from slowthink.curate.difficulty import DifficultySettings
    from slowthink.modeling import load_model_and_tokenizer
    from slowthink.rewards.verdict import ExactMatchChecker
    from slowthink.rollout.hf import HFGenerator

    model, tokenizer = load_model_and_tokenizer(model_path)
    if checker == "exact":
        check = ExactMatchChecker()
    else:
        from slowthink.rewards.math_checker import MathChecker

        check = MathChecker()
    settings = DifficultySettings(samples=samples, max_new_tokens=max_new_tokens, template=template)
    return HFGenerator(model.eval(), tokenizer), tokenizer, check, settings
