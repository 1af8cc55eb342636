"""``slowthink eval``: benchmarks -> generator -> checker -> samples, summary, table.

Read top to bottom: load problems -> check the output folder (resume) -> build the backend
and the checker -> per benchmark, draw the missing samples and summarize -> write the
summaries and print the table. The paper's settings (sections 4.3, 4.4): greedy decoding,
or sampling at T=0.6, top-p 0.95 with n=5 or 8, up to 32,768 tokens.

``--tools python`` wraps the backend in the tool loop (code blocks run in the sandbox, their
output spliced in; section 4.4, STILL-3-TOOL); ``--tools-no-exec`` is the paper's ablation
"code written but not executed". Rows then carry tool-call counts and statuses, and the
summaries the tool metrics (docs/tools.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

from slowthink.config import ConfigError
from slowthink.data.problems import Problem
from slowthink.data.table_problems import load_problems
from slowthink.durable import exclusive_lock
from slowthink.eval.benchmarks import load_benchmark
from slowthink.eval.identity import model_identity, pick_card, served_identity
from slowthink.eval.metrics import summarize
from slowthink.eval.runner import (
    Decoding,
    SampleStore,
    check_unique_ids,
    count_missing,
    run_samples,
    tool_summary,
    write_json,
)
from slowthink.eval.table import print_table, tool_line
from slowthink.progress import count_bar
from slowthink.recipes.eval_config import EvalConfig  # `slowthink config eval` finds it here too (config/docs.py)

# Settings that change what a sample is: a resumed run must match them. run.json keeps them
# flat, as every version of eval wrote them (a record of what a sample means, not the config).
RESUME_KEYS = (
    "model",
    "model_identity",
    "template",
    "mode",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "checker",
    "answer_fallback",
    "tools",
    "tool_preset",
    "max_tool_calls",
    "tools_execute",
)
# What a run.json written before tools existed meant by the tool keys: no tools.
RESUME_DEFAULTS = {"tools": "none", "tool_preset": None, "max_tool_calls": None, "tools_execute": None}


def load_eval_sets(cfg: EvalConfig) -> list[tuple[str, list[Problem], set[str]]]:
    """(name, problems, every id of the set) per benchmark or data file; the problems are
    cut to the first ``limit``, the ids are not (samples of problems past it are kept)."""
    data = cfg.data
    if data.file:
        sets = [(Path(data.file.partition("@")[0]).stem, load_problems(data.file, data.columns), data.file)]
    else:
        sets = [(name, load_benchmark(name, data.benchmark_dir), name) for name in data.benchmarks]
    cut = []
    for name, problems, source in sets:
        check_unique_ids(problems, source)
        cut.append((name, problems[: data.limit] if data.limit else problems, {p.id for p in problems}))
    return cut


def current_identity(cfg: EvalConfig) -> dict[str, Any]:
    """What the samples are drawn from (eval/identity.py): the files at --model, or the
    card of the model the server serves (``GET /v1/models``)."""
    if cfg.backend.kind != "openai":
        return model_identity(str(cfg.model), cfg.tokenizer)
    from slowthink.rollout.openai_backend import OpenAIBackendError

    client = cfg.backend.remote(concurrency=1)
    try:
        card = pick_card(client.list_models(), cfg.backend.served_model_name, f"{client.base_url}/models")
    except LookupError as exc:
        raise ConfigError(f"backend.served_model_name: {exc}") from None
    except ValueError as exc:
        raise OpenAIBackendError(str(exc)) from None
    finally:
        client.close()
    return served_identity(card, cfg.tokenizer or cfg.model)


def check_resume(out: Path, cfg: EvalConfig, decoding: Decoding, identity: dict[str, Any]) -> None:
    """Refuse to mix samples drawn under other settings, or from another model, into one
    output folder; record ours."""
    settings = {
        "model": cfg.model,
        "model_identity": identity,
        "template": cfg.data.template,
        "mode": cfg.sampling.mode,
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "max_tokens": decoding.max_tokens,
        "seed": decoding.seed,
        "checker": cfg.checker.kind,
        "answer_fallback": cfg.checker.answer_fallback,
        **cfg.tools.settings(),
    }
    path = out / "run.json"
    if path.is_file():
        previous = {**RESUME_DEFAULTS, **json.loads(path.read_text(encoding="utf-8"))}
        if "model_identity" not in previous:
            raise ConfigError(
                f"--out {out} holds samples from before eval recorded which model drew them, so they cannot be matched "
                "to this model. Use another --out (or move that folder away) to start over"
            )
        for key in RESUME_KEYS:
            if previous[key] != settings[key]:
                raise ConfigError(resume_mismatch(out, key, previous[key], settings[key]))
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, {**settings, "backend": cfg.backend.kind, "n": decoding.n})


def resume_mismatch(out: Path, key: str, before: Any, now: Any) -> str:
    if key == "model_identity":
        return (
            f"--out {out} holds samples of another model: they were drawn from {json.dumps(before, sort_keys=True)}, this "
            f"run evaluates {json.dumps(now, sort_keys=True)} (new weights at the same path, or another served model). "
            "Use another --out to evaluate this model"
        )
    return f"--out {out} holds samples drawn with {key}={before!r}; this run asks {key}={now!r}. Use another --out, or the same settings to resume"


def build_backend(cfg: EvalConfig, decoding: Decoding, stack: ExitStack) -> tuple[Any, Any, int | None]:
    """(generator, tokenizer, context length or None) for ``cfg.backend.kind``; closed by ``stack``."""
    from slowthink.models.modeling import load_tokenizer
    from slowthink.rollout import factory

    backend = cfg.backend
    if backend.kind == "hf":
        return factory.load_local(str(cfg.model), batch_size=backend.batch_size * decoding.n)
    if backend.kind == "openai":
        generator = backend.remote()
        stack.callback(generator.close)
        # The generator re-encodes completion text with it when the server sends no token ids.
        generator.tokenizer = tokenizer = load_tokenizer(openai_tokenizer_name(cfg, lambda: generator.model))
        # The server enforces its own context; requests past it come back as errors.
        return generator, tokenizer, None
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
    from slowthink.rollout.vllm_backend import VLLMEngineConfig

    # The RL rollout engine's code; no trainer shares the GPU, so no sleeping between calls.
    engine = VLLMEngineConfig(tensor_parallel_size=backend.tensor_parallel_size, gpu_memory_utilization=0.9, sleep_mode=False)
    generator = factory.vllm_engine(str(cfg.model), engine, seed=decoding.seed, tokenizer=tokenizer)
    return generator, tokenizer, generator.context_length


def openai_tokenizer_name(cfg: EvalConfig, served_model: Callable[[], str]) -> str:
    """The tokenizer that renders prompts for ``--backend openai``.

    ``--tokenizer``, else ``--model``; else the served model's name (``served_model()``
    asks ``/v1/models``) when it is a local directory, or "tiny" (the embedded model, as
    ``slowthink serve`` names it). Anything else is a ``ConfigError``: the embedded tiny
    tokenizer used to be taken silently, which renders wrong prompts for a real model.
    """
    if cfg.tokenizer or cfg.model:
        return str(cfg.tokenizer or cfg.model)
    served = served_model()
    if served == "tiny" or Path(served).is_dir():
        return served
    raise ConfigError(
        f"--backend openai needs a tokenizer to render prompts: the server serves {served!r}, which is not a local "
        f"directory. Pass --tokenizer (a local directory or hub name of that model's tokenizer) or --model"
    )


def wrap_tools(cfg: EvalConfig, generator: Any, tokenizer: Any, stack: ExitStack) -> Any:
    """The backend as is, or inside the tool loop with a sandbox (closed by ``stack``).

    With ``--tools-no-exec`` no sandbox is started: the loop stops at each code block and
    goes on without output, so code is written but never run (section 4.4's ablation)."""
    tools = cfg.tools
    if tools.kind == "none":
        return generator
    from slowthink.rollout.factory import with_tools

    loop = with_tools(generator, tokenizer, tools.preset, tools.max_tool_calls, execute=tools.execute)
    stack.callback(loop.close)  # the sandbox's worker (and the engine, closed again: idempotent)
    return loop


def build_checker(cfg: EvalConfig, stack: ExitStack) -> Any:
    from slowthink.rewards.checkers import make_checker

    checker = make_checker(cfg.checker.kind, workers=cfg.checker.workers, fallback=cfg.checker.answer_fallback)
    stack.callback(checker.close)
    return checker


def evaluate(cfg: EvalConfig, console: Console | None = None) -> dict[str, dict[str, Any]]:
    """Run every benchmark of ``cfg``; returns {benchmark: summary} (also written under ``cfg.out``)."""
    console = console or Console()
    decoding = cfg.decoding()
    problem_sets = load_eval_sets(cfg)
    out = Path(cfg.out)
    summaries: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        # One eval per --out: two at once would append every row twice. The lock
        # fails at once naming the holder's PID, and dies with its holder.
        stack.enter_context(exclusive_lock(out / ".lock", f"eval output {out}"))
        check_resume(out, cfg, decoding, current_identity(cfg))
        generator, tokenizer, context = build_backend(cfg, decoding, stack)
        generator = wrap_tools(cfg, generator, tokenizer, stack)
        checker = build_checker(cfg, stack)
        for name, problems, known_ids in problem_sets:
            store = SampleStore(out / name / "samples.jsonl")
            stack.callback(store.close)
            todo = count_missing(problems, decoding.n, store, tokenizer, cfg.data.template)
            console.print(f"[bold]{name}[/]: {len(problems)} problems x {decoding.n} samples, {todo} to generate")
            with count_bar(console, cfg.progress, name, todo) as advance:
                records = run_samples(
                    problems,
                    generator,
                    tokenizer,
                    checker,
                    cfg.data.template,
                    decoding,
                    store,
                    context_length=context,
                    chunk_size=cfg.backend.batch_size,
                    on_sample=advance,
                    record_tools=cfg.tools.kind != "none",
                    known_ids=known_ids,
                )
            summaries[name] = {"benchmark": name, **summarize(records, decoding.n, cfg.sampling.mode, checker, cfg.pass_k)}
            if cfg.tools.kind != "none":
                summaries[name].update(tool_summary(records, store))
                console.print(tool_line(summaries[name]))
            write_json(out / name / "summary.json", summaries[name])
    write_json(out / "summary.json", summaries)
    print_table(console, summaries)
    console.print(f"samples and summaries in {out}/")
    return summaries
