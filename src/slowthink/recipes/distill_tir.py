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
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, Sequence

import typer
from pydantic import model_validator
from rich.console import Console

from slowthink.config import StrictConfig
from slowthink.data.problems import DataError, Problem, load_problems
from slowthink.eval.runner import check_unique_ids
from slowthink.prompts import TEMPLATE_NAMES, encode_prompt
from slowthink.rewards.verdict import Checker
from slowthink.rollout.tool_loop import ToolLoop
from slowthink.tir.filter import drop_reason
from slowthink.tir.paths import Candidate, TIRSampling, inject_responses, instruct_responses


class DistillTIRConfig(StrictConfig):
    """Everything ``slowthink distill-tir`` needs; the command-line options map onto these fields."""

    data: str
    out: str
    # "tiny", a local Hugging Face directory or a hub name; with --backend openai it names the tokenizer.
    teacher: str = "tiny"
    backend: Literal["hf", "openai"] = "hf"
    base_url: str | None = None
    api_key: str | None = None
    # Served model name (--backend openai; default: the first of /v1/models).
    model: str | None = None
    tokenizer: str | None = None
    concurrency: int = 8
    timeout_s: float = 600.0
    # instruct: ask for code; inject: prefix injection; both: inject where instruct kept nothing.
    source: Literal["instruct", "inject", "both"] = "both"
    instruct_template: str = "tool"
    inject_template: str = "chat"
    n: int = 1
    max_tokens: int = 16384
    temperature: float = 0.6
    top_p: float = 0.95
    code_temperature: float = 1.0
    code_max_tokens: int = 1024
    min_injections: int = 1
    max_injections: int = 3
    tool_preset: Literal["default", "still3"] = "default"
    max_tool_calls: int | None = None
    strict_cells: bool = False
    checker: Literal["math", "exact"] = "math"
    checker_workers: int = 2
    batch_size: int = 8
    limit: int | None = None
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _check(self) -> "DistillTIRConfig":
        for key in ("instruct_template", "inject_template"):
            if getattr(self, key) not in TEMPLATE_NAMES:
                raise ValueError(f"{key} '{getattr(self, key)}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "hf" and (self.base_url or self.model):
            raise ValueError("--base-url and --model are for --backend openai; a local teacher is --teacher PATH")
        for key in ("n", "max_tokens", "code_max_tokens", "batch_size", "concurrency", "checker_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.min_injections <= self.max_injections:
            raise ValueError(f"need 0 <= min_injections <= max_injections, got {self.min_injections} and {self.max_injections}")
        if not 0 < self.top_p <= 1 or self.temperature < 0 or self.code_temperature < 0:
            raise ValueError("temperatures must be >= 0 and top_p in (0, 1]")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        return self

    def sampling(self) -> TIRSampling:
        return TIRSampling(n=self.n, temperature=self.temperature, top_p=self.top_p,
                           code_temperature=self.code_temperature, code_max_tokens=self.code_max_tokens,
                           min_injections=self.min_injections, max_injections=self.max_injections)


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
    if cfg.backend == "hf":
        from slowthink.modeling import load_model_and_tokenizer, set_torch_threads
        from slowthink.rollout.hf import HFGenerator

        set_torch_threads()
        model, tokenizer = load_model_and_tokenizer(cfg.teacher)
        model.eval()
        context = getattr(model.config, "max_position_embeddings", None)
        return HFGenerator(model, tokenizer, batch_size=cfg.batch_size * cfg.n), tokenizer, context
    from slowthink.modeling import load_tokenizer
    from slowthink.rollout.openai_backend import OpenAIGenerator

    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model or cfg.teacher)
    generator = OpenAIGenerator(cfg.base_url or "", model=cfg.model, api_key=cfg.api_key, concurrency=cfg.concurrency,
                                timeout_s=cfg.timeout_s, tokenizer=tokenizer)
    stack.callback(generator.close)
    return generator, tokenizer, None


def build_checker(cfg: DistillTIRConfig, stack: ExitStack) -> Checker:
    if cfg.checker == "exact":
        from slowthink.rewards.verdict import ExactMatchChecker

        checker: Any = ExactMatchChecker()
    else:
        from slowthink.rewards.math_checker import MathChecker

        checker = MathChecker(workers=cfg.checker_workers)
    stack.callback(checker.close)
    return checker


def _batch_seed(base: int, problem_id: str) -> int:
    """A sampling seed fixed by (run seed, first problem of the batch): stable across resumes."""
    return int.from_bytes(hashlib.sha256(f"{base}:{problem_id}".encode()).digest()[:4], "little")


def _budget(cfg: DistillTIRConfig, prompts: Sequence[list[int]], context: int | None, problems: Sequence[Problem]) -> int:
    """Response tokens (model + tool) for this batch: --max-tokens, cut to fit the context."""
    if context is None:
        return cfg.max_tokens
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i]))
    budget = min(cfg.max_tokens, context - len(prompts[longest]))
    if budget < 1:
        raise DataError(f"problem '{problems[longest].id}': its prompt has {len(prompts[longest])} tokens, the "
                        f"teacher's context is {context}; nothing is left to generate")
    return budget


def judge(candidates: list[Candidate], problems: Sequence[Problem], checker: Checker, strict_cells: bool) -> list[str | None]:
    """The drop reason of each candidate (None: keep), checking answers in one call."""
    live = [c for c in candidates if c.failed is None]
    verdicts = iter(checker.check([problems[c.prompt_index].answer for c in live], [c.text for c in live]))
    return [c.failed if c.failed is not None
            else drop_reason(c.tool_calls, c.finished, next(verdicts).status, strict_cells, text=c.text)
            for c in candidates]


def distill_batch(problems: Sequence[Problem], loop: ToolLoop, checker: Checker, cfg: DistillTIRConfig,
                  context: int | None = None) -> list[tuple[list[dict[str, Any]], Counter]]:
    """(kept rows, counts) per problem of the batch, in order."""
    results: list[tuple[list[dict[str, Any]], Counter]] = [([], Counter()) for _ in problems]
    sampling, seed = cfg.sampling(), _batch_seed(cfg.seed, problems[0].id)
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
        for candidate, reason in zip(candidates, judge(candidates, subset, checker, cfg.strict_cells)):
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
    }
    if candidate.source == "inject":
        row["injections"] = candidate.injections
    return row


def distill(problems: Sequence[Problem], loop: ToolLoop, checker: Checker, cfg: DistillTIRConfig,
            context: int | None = None, console: Console | None = None) -> Counter:
    """Process every problem not yet in ``cfg.out``; returns the counts over all sessions."""
    from slowthink.recipes.evaluate import progress_bar

    console = console or Console()
    out, progress = Path(cfg.out), progress_path(cfg.out)
    done = {row["id"] for row in read_rows(out)} | {row["id"] for row in read_rows(progress)}
    todo = [p for p in problems if p.id not in done]
    console.print(f"distill-tir: {len(problems)} problems, {len(problems) - len(todo)} done before, {len(todo)} to do")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as out_file, progress.open("a", encoding="utf-8") as progress_file, \
            progress_bar(console, cfg.progress, "distill-tir", len(todo)) as advance:
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
    from slowthink.rollout.tool_loop import ToolLoopConfig, sandbox_config_for
    from slowthink.sandbox import ProcessSandbox

    problems = load_problems(cfg.data)
    check_unique_ids(problems, cfg.data)
    problems = problems[: cfg.limit] if cfg.limit else problems
    with ExitStack() as stack:
        generator, tokenizer, context = build_teacher(cfg, stack)
        sandbox = stack.enter_context(ProcessSandbox(sandbox_config_for(cfg.tool_preset)))
        loop = ToolLoop(generator, sandbox, tokenizer, ToolLoopConfig(preset=cfg.tool_preset, max_tool_calls=cfg.max_tool_calls))
        checker = build_checker(cfg, stack)
        return distill(problems, loop, checker, cfg, context, console)


def distill_tir_cli(
    data: str = typer.Option(..., help="problems JSONL ({id, problem, answer} rows)"),
    out: str = typer.Option(..., help="output JSONL of SFT rows; rerunning with the same file resumes"),
    teacher: str = typer.Option("tiny", help="local teacher: 'tiny', a HF model directory or hub name (openai: its tokenizer)"),
    backend: str = typer.Option("hf", help="hf (local model) or openai (any OpenAI-compatible server)"),
    base_url: str = typer.Option(None, help="server URL for --backend openai, e.g. http://127.0.0.1:8000/v1"),
    api_key: str = typer.Option(None, envvar="OPENAI_API_KEY", help="bearer token for --backend openai"),
    model: str = typer.Option(None, help="served model name for --backend openai (default: first of /v1/models)"),
    tokenizer: str = typer.Option(None, help="tokenizer for --backend openai (default: --model, else --teacher)"),
    concurrency: int = typer.Option(8, help="requests in flight (--backend openai)"),
    timeout_s: float = typer.Option(600.0, help="per-request timeout in seconds (--backend openai)"),
    source: str = typer.Option("both", help="instruct (ask for code), inject (prefix injection), or both (inject "
                                            "where instruct kept nothing)"),
    instruct_template: str = typer.Option("tool", help="prompt template of the instruct path"),
    inject_template: str = typer.Option("chat", help="prompt template of the plain thoughts (inject path)"),
    n: int = typer.Option(1, help="responses per problem and path"),
    max_tokens: int = typer.Option(16384, help="tokens per response (model + tool output); cut to the context"),
    temperature: float = typer.Option(0.6, help="temperature of thoughts and continuations (paper: 0.6)"),
    top_p: float = typer.Option(0.95, help="top-p of thoughts and continuations (paper: 0.95)"),
    code_temperature: float = typer.Option(1.0, help="temperature of injected code (paper: 1.0)"),
    code_max_tokens: int = typer.Option(1024, help="tokens for one injected code block"),
    min_injections: int = typer.Option(1, help="fewest code injections per inject-path response"),
    max_injections: int = typer.Option(3, help="most code injections per inject-path response (paper: up to 3)"),
    tool_preset: str = typer.Option("default", help="tool format: default or still3 (the paper's release)"),
    max_tool_calls: int = typer.Option(None, help="code blocks the teacher may run per response (default: no limit)"),
    strict_cells: bool = typer.Option(False, "--strict-cells", help="drop responses with any cell that failed"),
    checker: str = typer.Option("math", help="math (math-verify) or exact (string match, the tiny task)"),
    checker_workers: int = typer.Option(2, help="answer-checker worker processes"),
    batch_size: int = typer.Option(8, help="problems per batch; results are saved after each"),
    limit: int = typer.Option(None, help="only the first N problems"),
    seed: int = typer.Option(0, help="seed of sampling and of the injection choices"),
    progress: bool = typer.Option(True, help="progress bar on a terminal"),
) -> None:
    """Distill tool-integrated reasoning data (STILL-3-TOOL, section 4.4) from a teacher into SFT-ready JSONL.

    Two paths: ask the teacher to solve with code, or inject code into its own long thought.
    Only responses with executed code and the right answer are kept.
    """
    from pydantic import ValidationError

    from slowthink.config import format_validation_error

    # Every option above is a config field of the same name (the imports are not).
    options = {name: value for name, value in locals().items() if name in DistillTIRConfig.model_fields}
    try:
        cfg = DistillTIRConfig(**options)
    except ValidationError as exc:
        typer.echo(f"error: {format_validation_error(DistillTIRConfig, exc, 'slowthink distill-tir options')}", err=True)
        raise typer.Exit(2) from None
    # A user's mistake exits 2, an unreachable server 1, with one message: slowthink/cli_errors.py.
    run_distill_tir(cfg)
