"""``slowthink curate``: sources -> filters (-> difficulty by a model's pass rate) -> pool and report.

Read top to bottom: refuse outputs that would overwrite a source -> build the difficulty
engine when a model is named -> run the pipeline (slowthink/curate/pipeline.py) -> write the
Markdown report with the settings that decided each drop (paper section 2).
"""

from __future__ import annotations

import time
from pathlib import Path

from slowthink.curate.config import CurateConfig
from slowthink.curate.pipeline import CurationStats, curate
from slowthink.curate.report import curation_report
from slowthink.durable import check_output


def run_curate(cfg: CurateConfig, command: str) -> tuple[CurationStats, Path]:
    """Curate ``cfg.sources`` into ``cfg.out``; returns the counts and the report's path."""
    started = time.perf_counter()
    report_path = Path(cfg.report) if cfg.report else Path(cfg.out).with_suffix(".md")
    # Writing the pool or the report over a source would destroy it (durable.py).
    check_output(cfg.out, [*cfg.sources, *cfg.benchmarks])
    check_output(report_path, [*cfg.sources, *cfg.benchmarks, cfg.out], "--report")
    difficulty = build_difficulty(cfg) if cfg.difficulty.model else None
    stats = curate(list(cfg.sources), Path(cfg.out), cfg.filters, list(cfg.benchmarks), difficulty)
    wall = f"Difficulty filter: {cfg.difficulty.model or 'off'}. Wall time {time.perf_counter() - started:.0f} s."
    notes = [*settings_notes(cfg), wall]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(curation_report(stats, "Curation report", command, notes), encoding="utf-8")
    return stats, report_path


def build_difficulty(cfg: CurateConfig):
    """(engine, tokenizer, checker, settings) for the pass-rate filter with ``cfg.difficulty.model``."""
    from slowthink.curate.difficulty import DifficultySettings
    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rewards.checkers import make_checker
    from slowthink.rollout.factory import hf_engine

    level = cfg.difficulty
    model, tokenizer = load_model_and_tokenizer(level.model)
    settings = DifficultySettings(samples=level.samples, max_new_tokens=level.max_new_tokens, template=level.template)
    return hf_engine(model.eval(), tokenizer, batch_size=64), tokenizer, make_checker(level.checker), settings


def settings_notes(cfg: CurateConfig) -> list[str]:
    """The report's lines on what made a row a copy or a near duplicate."""
    from slowthink.curate.dedup import lsh_params

    filters = cfg.filters
    bands, rows = lsh_params(filters.near_duplicate_threshold, filters.num_perm)
    return [
        f"Benchmarks (decontamination targets): {', '.join(Path(b).stem for b in cfg.benchmarks) or 'none'}; a row is a copy "
        f"when at least {filters.contamination_threshold:.0%} of one benchmark problem's {filters.ngram}-grams, all its numbers "
        "and its question are in it.",
        f"Near duplicates: MinHash LSH with {filters.num_perm} permutations in {bands} bands x {rows} rows proposes candidates; "
        f"each is kept only at an exact token 3-gram Jaccard >= {filters.near_duplicate_threshold} (and the same gold).",
    ]
