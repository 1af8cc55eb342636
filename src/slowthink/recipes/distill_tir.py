"""``slowthink distill-tir``: tool-integrated demonstrations from a teacher (STILL-3-TOOL, section 4.4).

Read top to bottom: load the problems -> skip those already done (resume) -> build the
teacher (a local model or an OpenAI-compatible server), the sandbox and tool loop, the
checker -> per batch of problems: the instruct path, then the prefix-injection path for
problems the instruct path kept nothing for (``--source both``) -> judge each response
(``tir.filter``) -> append kept rows and per-problem counts -> print the counts.

The output is SFT-ready JSONL: ``slowthink sft data.source=jsonl data.train_file=OUT``
reads it as is (``messages``; the other fields are for people and for resume). Beside it,
``<OUT stem>.progress.jsonl`` holds one row of counts per finished problem, so a rerun
skips every problem done before (kept or not) and the final counts cover all sessions.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from rich.console import Console

from slowthink.config import StrictConfig
from slowthink.data.problems import DataError, Problem
from slowthink.data.prompts import TEMPLATE_NAMES, encode_prompt
from slowthink.data.table_problems import load_problems
from slowthink.data.tool_spans import call_spans
from slowthink.eval.runner import check_unique_ids
from slowthink.recipes.common_config import MOVED_BACKEND_KEYS, BackendConfig, CheckerConfig, MovedKeysConfig
from slowthink.rewards.verdict import Checker
from slowthink.rollout.tool_loop import ToolLoop
from slowthink.tir.filter import drop_reason
from slowthink.tir.teacher import Candidate, TIRSampling, inject_responses, instruct_responses

# The flat keys distill-tir read before its sections, and where each went (the flags did not change).
MOVED_KEYS = {
    "data": "data.file",
    "limit": "data.limit",
    **MOVED_BACKEND_KEYS,
    "max_tokens": "sampling.max_tokens",
    "tool_preset": "tools.preset",
    "max_tool_calls": "tools.max_tool_calls",
    "strict_cells": "tools.strict_cells",
    "checker": "checker.kind",
    "checker_workers": "checker.workers",
}


class DistillDataConfig(StrictConfig):
    """The problems the teacher solves."""

    file: str
    """Problems JSONL ({id, problem, answer} rows)."""
    limit: int | None = Field(None, ge=1)
    """Only the first N problems."""


class TeacherBackendConfig(BackendConfig):
    """The teacher: a local model (hf) or an OpenAI-compatible server (openai)."""

    kind: Literal["hf", "openai"] = "hf"  # type: ignore[assignment]  # no vllm teacher
    """hf (a local model, --model) or openai (any OpenAI-compatible server)."""


class TeacherToolsConfig(StrictConfig):
    """The tool loop the teacher writes code in, and what a cell's failure costs a response."""

    preset: Literal["default", "still3"] = "default"
    """Tool output format: default or still3 (the paper's release)."""
    max_tool_calls: int | None = Field(None, ge=0)
    """Code blocks the teacher may run per response (null: no limit)."""
    strict_cells: bool = False
    """Drop responses with any cell that failed."""


class DistillTIRConfig(MovedKeysConfig):
    """Everything ``slowthink distill-tir`` needs: a YAML file, the flags and key=value overrides."""

    command = "distill-tir"
    moved_keys = MOVED_KEYS

    data: DistillDataConfig
    """The problems (data.file, required; --data)."""
    out: str
    """Output JSONL of SFT rows; rerunning with the same file resumes."""
    model: str = "tiny"
    """The teacher: "tiny", a local Hugging Face directory or a hub name; with backend openai it names the tokenizer."""
    tokenizer: str | None = None
    """Tokenizer that renders prompts for backend openai (default: model when given, else backend.served_model_name)."""
    source: Literal["instruct", "inject", "both"] = "both"
    """instruct: ask for code; inject: prefix injection; both: inject where instruct kept nothing."""
    instruct_template: str = "tool"
    """Prompt template of the instruct path."""
    inject_template: str = "chat"
    """Prompt template of the plain thoughts (inject path)."""
    batch_size: int = Field(8, ge=1)
    """Problems per batch; results are saved after each."""
    seed: int = 0
    """Seed of sampling and of the injection choices."""
    progress: bool = True
    """Progress bar on a terminal."""
    backend: TeacherBackendConfig = TeacherBackendConfig()
    """The teacher's backend: hf (a local model) or an OpenAI-compatible server (the same keys as eval's)."""
    sampling: TIRSampling = TIRSampling()
    """How the teacher is sampled: n, temperatures, top-p, tokens, injections (section 4.4's settings)."""
    tools: TeacherToolsConfig = TeacherToolsConfig()
    """The tool loop's output format and budget, and whether a failed cell drops a response."""
    checker: CheckerConfig = CheckerConfig()
    """How the teacher's final answers are checked: math-verify or exact match, workers."""

    @model_validator(mode="after")
    def _check(self) -> DistillTIRConfig:
        for key in ("instruct_template", "inject_template"):
            if getattr(self, key) not in TEMPLATE_NAMES:
                raise ValueError(f"{key} '{getattr(self, key)}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        return self


def progress_path(out: str | Path) -> Path:
    """Per-problem counts beside the output: ``data.jsonl`` -> ``data.progress.jsonl``."""
    return Path(out).with_suffix(".progress.jsonl")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of one of our JSONL files. A last line without its newline was cut by a kill:
    it is dropped and cut off the file; any other bad line names file:line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines[-1]:
        with path.open("r+b") as handle:
            handle.truncate(len(data) - len(lines[-1]))
    rows = []
    for lineno, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}); move the file away to start over") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise DataError(f"{path}:{lineno}: not a distill-tir row (no string 'id'); is --out another file?")
        rows.append(row)
    return rows


def build_teacher(cfg: DistillTIRConfig, stack: ExitStack) -> tuple[Any, Any, int | None]:
    """(generator, tokenizer, context length or None) for the teacher; closed by ``stack``."""
    from slowthink.rollout import factory

    if cfg.backend.kind == "hf":
        return factory.load_local(cfg.model, batch_size=cfg.batch_size * cfg.sampling.n)
    from slowthink.models.modeling import load_tokenizer

    tokenizer = load_tokenizer(teacher_tokenizer(cfg))
    generator = cfg.backend.remote(tokenizer=tokenizer)
    stack.callback(generator.close)
    return generator, tokenizer, None


def teacher_tokenizer(cfg: DistillTIRConfig) -> str:
    """What renders an openai teacher's prompts: ``tokenizer``, else ``--model`` when given
    (docs/tools.md: it names the tokenizer), else the served model's name."""
    if cfg.tokenizer:
        return cfg.tokenizer
    served = cfg.backend.served_model_name
    if "model" in cfg.model_fields_set or not served:
        return cfg.model
    return served


def build_checker(cfg: DistillTIRConfig, stack: ExitStack) -> Checker:
    from slowthink.rewards.checkers import make_checker

    checker = make_checker(cfg.checker.kind, workers=cfg.checker.workers)
    stack.callback(checker.close)
    return checker


def _batch_seed(base: int, problem_id: str) -> int:
    """A sampling seed fixed by (run seed, first problem of the batch): stable across resumes."""
    return int.from_bytes(hashlib.sha256(f"{base}:{problem_id}".encode()).digest()[:4], "little")


def _budget(cfg: DistillTIRConfig, prompts: Sequence[list[int]], context: int | None, problems: Sequence[Problem]) -> int:
    """Response tokens (model + tool) for this batch: --max-tokens, cut to fit the context."""
    if context is None:
        return cfg.sampling.max_tokens
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]))
    budget = min(cfg.sampling.max_tokens, context - len(prompts[longest]))
    if budget < 1:
        raise DataError(
            f"problem '{problems[longest].id}': its prompt has {len(prompts[longest])} tokens, the "
            f"teacher's context is {context}; nothing is left to generate"
        )
    return budget


def judge(candidates: list[Candidate], problems: Sequence[Problem], checker: Checker, strict_cells: bool) -> list[str | None]:
    """The drop reason of each candidate (None: keep), checking answers in one call."""
    live = [c for c in candidates if c.failed is None]
    verdicts = iter(checker.check([problems[c.prompt_index].answer for c in live], [c.text for c in live]))
    return [
        c.failed if c.failed is not None else drop_reason(c.tool_calls, c.finished, next(verdicts).status, strict_cells, text=c.text)
        for c in candidates
    ]


def distill_batch(
    problems: Sequence[Problem], loop: ToolLoop, checker: Checker, cfg: DistillTIRConfig, context: int | None = None
) -> list[tuple[list[dict[str, Any]], Counter]]:
    """(kept rows, counts) per problem of the batch, in order."""
    results: list[tuple[list[dict[str, Any]], Counter]] = [([], Counter()) for _ in problems]
    sampling, seed = cfg.sampling, _batch_seed(cfg.seed, problems[0].id)
    paths = ["instruct", "inject"] if cfg.source == "both" else [cfg.source]
    for path in paths:
        # --source both: injection only for problems the instruct path kept nothing for.
        todo = [i for i, (rows, _) in enumerate(results) if not rows]
        if not todo:
            break
        subset = [problems[i] for i in todo]
        template = cfg.instruct_template if path == "instruct" else cfg.inject_template
        prompts = [encode_prompt(template, p.problem, loop.tokenizer) for p in subset]
        budget = _budget(cfg, prompts, context, subset)
        if path == "instruct":
            candidates = instruct_responses(prompts, loop, sampling, budget, seed)
        else:
            rngs = [random.Random(f"{cfg.seed}:{p.id}") for p in subset]
            candidates = inject_responses(prompts, rngs, loop, sampling, budget, seed + 1)
        for candidate, reason in zip(candidates, judge(candidates, subset, checker, cfg.tools.strict_cells)):
            rows, counts = results[todo[candidate.prompt_index]]
            counts[f"{path}/generated"] += 1
            if reason is not None:
                counts[f"{path}/dropped/{reason}"] += 1
                continue
            counts[f"{path}/kept"] += 1
            rows.append(sft_row(subset[candidate.prompt_index], candidate))
    return results


def sft_row(problem: Problem, candidate: Candidate) -> dict[str, Any]:
    """One training row. The user turn is the bare question (no tool instruction): the
    student learns to reach for code on its own, as STILL-3-TOOL-32B did."""
    row: dict[str, Any] = {
        "id": problem.id,
        "messages": [{"role": "user", "content": problem.problem}, {"role": "assistant", "content": candidate.text}],
        "answer": problem.answer,
        "source": candidate.source,
        "tool_calls": len(candidate.tool_calls),
        "tool_statuses": [call["status"] for call in candidate.tool_calls],
        # The characters of the assistant's content the interpreter wrote: what SFT masks
        # with data.mask_tool_outputs=true and tokenizes as untrusted (data/tool_spans.py).
        "tool_spans": [list(span) for span in call_spans(candidate.tool_calls)],
    }
    if candidate.source == "inject":
        row["injections"] = candidate.injections
    return row


def distill(
    problems: Sequence[Problem], loop: ToolLoop, checker: Checker, cfg: DistillTIRConfig, context: int | None = None, console: Console | None = None
) -> Counter:
    """Process every problem not yet in ``cfg.out``; returns the counts over all sessions."""
    from slowthink.progress import count_bar

    console = console or Console()
    out, progress = Path(cfg.out), progress_path(cfg.out)
    done = {row["id"] for row in read_rows(out)} | {row["id"] for row in read_rows(progress)}
    todo = [p for p in problems if p.id not in done]
    console.print(f"distill-tir: {len(problems)} problems, {len(problems) - len(todo)} done before, {len(todo)} to do")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("a", encoding="utf-8") as out_file,
        progress.open("a", encoding="utf-8") as progress_file,
        count_bar(console, cfg.progress, "distill-tir", len(todo)) as advance,
    ):
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start : start + cfg.batch_size]
            for problem, (rows, counts) in zip(batch, distill_batch(batch, loop, checker, cfg, context)):
                # Rows first, then the problem's counts: a kill in between loses only counts.
                out_file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                out_file.flush()
                progress_file.write(json.dumps({"id": problem.id, "counts": dict(counts)}) + "\n")
                progress_file.flush()
            advance(len(batch))
    totals: Counter = Counter()
    for row in read_rows(progress):
        totals.update(row.get("counts", {}))
    print_counts(console, totals, out)
    return totals


def print_counts(console: Console, totals: Counter, out: Path) -> None:
    """Per path: responses generated, kept, and dropped by reason (all sessions)."""
    for path in ("instruct", "inject"):
        generated = totals.get(f"{path}/generated", 0)
        if not generated:
            continue
        prefix = f"{path}/dropped/"
        reasons = ", ".join(f"{k.removeprefix(prefix)} {v}" for k, v in sorted(totals.items()) if k.startswith(prefix))
        console.print(f"{path}: {generated} generated, {totals.get(f'{path}/kept', 0)} kept; dropped: {reasons or 'none'}")
    console.print(f"training rows in {out} (slowthink sft data.source=jsonl data.train_file={out})")


def run_distill_tir(cfg: DistillTIRConfig, console: Console | None = None) -> Counter:
    """Load the problems, build the teacher, sandbox, tool loop and checker, and distill."""
    from slowthink.rollout.factory import with_tools

    problems = load_problems(cfg.data.file)
    check_unique_ids(problems, cfg.data.file)
    problems = problems[: cfg.data.limit] if cfg.data.limit else problems
    with ExitStack() as stack:
        generator, tokenizer, context = build_teacher(cfg, stack)
        loop = with_tools(generator, tokenizer, cfg.tools.preset, cfg.tools.max_tool_calls)
        stack.callback(loop.close)  # the sandbox's worker
        checker = build_checker(cfg, stack)
        return distill(problems, loop, checker, cfg, context, console)
