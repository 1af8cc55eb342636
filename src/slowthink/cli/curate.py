"""The ``slowthink curate`` command (the filters and the pipeline: slowthink/curate/).

Must not import torch, transformers, datasketch or math-verify at module level: the curate
package, the model and the checker are imported when the command runs.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("out"),
    flag("report"),
    flag("benchmarks", "--benchmark"),
    flag("filters.skip"),
    flag("filters.contamination_threshold"),
    flag("filters.ngram"),
    flag("filters.near_duplicate_threshold"),
    flag("filters.problem_key"),
    flag("filters.answer_key"),
    flag("difficulty.model", "--difficulty-model"),
    flag("difficulty.samples"),
    flag("difficulty.max_new_tokens"),
    flag("difficulty.template"),
    flag("difficulty.checker"),
)
def curate_cli(
    args: list[str] = typer.Argument(
        None,
        help="Sources: JSONL files of {problem, answer} rows, or hf:NAME[:SPLIT] (needs "
        "'datasets'); then key=value overrides (keys: slowthink config curate).",
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML config (keys: slowthink config curate)."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Build an RL training pool: question-type, answer, duplicate, contamination and difficulty filters (paper section 2)."""
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument, split_overrides
    from slowthink.curate.config import CurateConfig
    from slowthink.curate.pipeline import curate
    from slowthink.curate.report import curation_report
    from slowthink.durable import check_output

    started = time.perf_counter()
    sources, overrides = split_overrides(args)
    flags = {"sources": sources, **(flags or {})}
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(CurateConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    report_path = Path(cfg.report) if cfg.report else Path(cfg.out).with_suffix(".md")
    # Writing the pool or the report over a source would destroy it (durable.py).
    check_output(cfg.out, [*cfg.sources, *cfg.benchmarks])
    check_output(report_path, [*cfg.sources, *cfg.benchmarks, cfg.out], "--report")
    level = cfg.difficulty
    difficulty = build_difficulty(level.model, level.samples, level.max_new_tokens, level.template, level.checker) if level.model else None
    stats = curate(list(cfg.sources), Path(cfg.out), cfg.filters, list(cfg.benchmarks), difficulty)
    command = "slowthink curate " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    from slowthink.curate.dedup import lsh_params

    bands, rows = lsh_params(cfg.filters.near_duplicate_threshold, cfg.filters.num_perm)
    notes = [
        f"Benchmarks (decontamination targets): {', '.join(Path(b).stem for b in cfg.benchmarks) or 'none'}; a row is a copy "
        f"when at least {cfg.filters.contamination_threshold:.0%} of one benchmark problem's {cfg.filters.ngram}-grams, all its numbers "
        "and its question are in it.",
        f"Near duplicates: MinHash LSH with {cfg.filters.num_perm} permutations in {bands} bands x {rows} rows proposes candidates; "
        f"each is kept only at an exact token 3-gram Jaccard >= {cfg.filters.near_duplicate_threshold} (and the same gold).",
        f"Difficulty filter: {cfg.difficulty.model or 'off'}. Wall time {time.perf_counter() - started:.0f} s.",
    ]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(curation_report(stats, "Curation report", command, notes), encoding="utf-8")
    print(f"kept {stats.kept} of {stats.read} rows -> {cfg.out}; report {report_path}")


def build_difficulty(model_path: str, samples: int, max_new_tokens: int, template: str, checker: str):
    from slowthink.curate.difficulty import DifficultySettings
    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rewards.checkers import make_checker
    from slowthink.rollout.factory import hf_engine

    model, tokenizer = load_model_and_tokenizer(model_path)
    settings = DifficultySettings(samples=samples, max_new_tokens=max_new_tokens, template=template)
    return hf_engine(model.eval(), tokenizer, batch_size=64), tokenizer, make_checker(checker), settings
