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
from typing import Any, Literal

from pydantic import Field, model_validator
from rich.console import Console

from slowthink.config import ConfigError, StrictConfig
from slowthink.data.problems import Problem, check_column_mapping
from slowthink.data.prompts import TEMPLATE_NAMES
from slowthink.data.table_problems import load_problems
from slowthink.durable import exclusive_lock
from slowthink.eval.benchmarks import BENCHMARK_NAMES, load_benchmark
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

# Paper, section 4.4: sampled evaluation at T = 0.6, top-p 0.95, n = 8.
SAMPLED_DEFAULTS = {"n": 8, "temperature": 0.6, "top_p": 0.95}
# Settings that change what a sample is: a resumed run must match them.
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
# Tool output formats (rollout.tool_loop.PRESETS).
TOOL_PRESETS = ("default", "still3")


class EvalConfig(StrictConfig):
    """Everything ``slowthink eval`` needs; the command-line options map onto these fields."""

    model: str | None = None
    """"tiny" (embedded; the default for hf and vllm), a local Hugging Face directory or a hub
    name. For the openai backend it only names the tokenizer (the served model is asked
    for at /v1/models); there it has no default, see ``openai_tokenizer_name``."""
    tokenizer: str | None = None
    """The tokenizer that renders prompts (default: --model's). With --backend openai, this or
    --model must name the served model's tokenizer, unless the server serves a local path."""
    benchmarks: tuple[str, ...] = ()
    """Named benchmarks to evaluate (-b, repeatable); see eval/benchmarks.py."""
    data: str | None = None
    """Problems instead of benchmarks: a .jsonl/.json/.parquet/.arrow/.csv file of {id, problem, answer} rows,
    a dataset folder (DIR@SPLIT) or a Hub id OWNER/NAME[:CONFIG][@SPLIT] (docs/data.md)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Which columns of --data hold a problem's fields, e.g. {problem: question, answer: final_answer}."""
    data_dir: str | None = None
    """Folder of shared-format JSONL copies of the named benchmarks (offline use)."""
    mode: Literal["greedy", "sampled"] = "greedy"
    """greedy: one sample at T=0; sampled: n samples per problem (sections 4.3, 4.4)."""
    n: int | None = None
    """Sampled mode defaults: n=8, T=0.6, top-p 0.95. Greedy: one sample at T=0."""
    temperature: float | None = None
    """Sampling temperature (sampled mode; null: 0.6)."""
    top_p: float | None = None
    """Nucleus-sampling p (sampled mode; null: 0.95)."""
    max_tokens: int = 32768
    """Generated tokens per response (paper: 32768); cut to fit the model's context."""
    template: str = "chat"
    """Prompt template (slowthink.data.prompts)."""
    backend: Literal["hf", "openai", "vllm"] = "hf"
    """hf (transformers in this process), openai (any OpenAI-compatible server), vllm (an in-process engine)."""
    base_url: str | None = None
    """Server URL for backend openai, e.g. http://127.0.0.1:8000/v1."""
    api_key: str | None = None
    """Bearer token for backend openai (the --api-key flag reads OPENAI_API_KEY)."""
    served_model_name: str | None = None
    """Model name on the server (backend openai; null: the first of /v1/models)."""
    concurrency: int = 8
    """Requests in flight (backend openai)."""
    timeout_s: float = 600.0
    """Per-request timeout in seconds (backend openai)."""
    max_retries: int = 3
    """Retries on connection errors and HTTP 408, 429, 500, 502-504 (backend openai)."""
    batch_size: int = 16
    """Prompts per generate call of the hf / vllm backends (the resume granularity)."""
    tensor_parallel_size: int = 1
    """GPUs the vllm backend shards the model over (backend vllm only)."""
    checker: Literal["math", "exact"] = "math"
    """math (math-verify in worker processes) or exact (string match)."""
    checker_workers: int = 2
    """Answer-checker worker processes."""
    answer_fallback: bool = False
    """Also accept unboxed final answers ("the answer is X", last number): evaluation only."""
    out: str = "runs/eval"
    """Output folder; rerunning with the same folder resumes."""
    limit: int | None = None
    """Only the first N problems of each benchmark."""
    seed: int = 0
    """Sampling seed."""
    pass_k: tuple[int, ...] = ()
    """pass@k values to report besides 1, 2, 4, ... and n (each k <= n)."""
    progress: bool = True
    """Progress bar on a terminal."""
    tools: Literal["none", "python"] = "none"
    """"python": run code blocks in the sandbox and splice their output in (section 4.4)."""
    tool_preset: str | None = None
    """Output format of the tool loop: "default" or "still3" (the paper's release); None: default."""
    max_tool_calls: int | None = None
    """Code blocks executed per response; later ones are left unrun. None: no limit (the paper's)."""
    tools_no_exec: bool = False
    """The paper's ablation "code written but not executed": stop at code blocks, run nothing."""

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        # hf and vllm load the model itself, the embedded tiny one by default. The openai
        # backend gets no default: a wrong tokenizer would silently build wrong prompts.
        if isinstance(data, dict) and data.get("model") is None and data.get("backend", "hf") != "openai":
            data = {**data, "model": "tiny"}
        return data

    @model_validator(mode="after")
    def _check(self) -> EvalConfig:
        if bool(self.benchmarks) == bool(self.data):
            raise ValueError("give --benchmark NAME (repeatable) or --data FILE.jsonl, not both and not neither")
        for name in self.benchmarks:
            if name not in BENCHMARK_NAMES:
                raise ValueError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARK_NAMES)}")
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.mode == "greedy" and ((self.n or 1) != 1 or self.temperature not in (None, 0) or self.top_p not in (None, 1)):
            raise ValueError("--mode greedy draws one sample at temperature 0; --n/--temperature/--top-p need --mode sampled")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        for key in ("max_tokens", "concurrency", "batch_size", "tensor_parallel_size", "checker_workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        n = self.decoding().n
        for k in self.pass_k:
            if not 1 <= k <= n:
                raise ValueError(f"pass_k: each k must be in 1..n = {n} samples per problem, got {k}")
        self._check_tools()
        check_column_mapping(self.columns)
        return self

    def _check_tools(self) -> None:
        if self.tools == "none" and (self.tool_preset is not None or self.max_tool_calls is not None or self.tools_no_exec):
            raise ValueError("--tool-preset, --max-tool-calls and --tools-no-exec need --tools python")
        if self.tool_preset is not None and self.tool_preset not in TOOL_PRESETS:
            raise ValueError(f"unknown tool preset '{self.tool_preset}'; allowed: {', '.join(TOOL_PRESETS)}")
        if self.max_tool_calls is not None and self.max_tool_calls < 0:
            raise ValueError(f"max_tool_calls must be >= 0, got {self.max_tool_calls}")

    def tool_settings(self) -> dict[str, Any]:
        """The tool settings a sample depends on (resume keys); all None without tools."""
        if self.tools == "none":
            return {"tools": "none", "tool_preset": None, "max_tool_calls": None, "tools_execute": None}
        return {
            "tools": self.tools,
            "tool_preset": self.tool_preset or "default",
            "max_tool_calls": self.max_tool_calls,
            "tools_execute": not self.tools_no_exec,
        }

    def decoding(self) -> Decoding:
        if self.mode == "greedy":
            return Decoding(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=self.seed)
        pick = lambda key: getattr(self, key) if getattr(self, key) is not None else SAMPLED_DEFAULTS[key]  # noqa: E731
        return Decoding(n=pick("n"), temperature=pick("temperature"), top_p=pick("top_p"), max_tokens=self.max_tokens, seed=self.seed)


def load_eval_sets(cfg: EvalConfig) -> list[tuple[str, list[Problem], set[str]]]:
    """(name, problems, every id of the set) per benchmark or data file; the problems are
    cut to the first ``limit``, the ids are not (samples of problems past it are kept)."""
    if cfg.data:
        sets = [(Path(cfg.data.partition("@")[0]).stem, load_problems(cfg.data, cfg.columns), cfg.data)]
    else:
        sets = [(name, load_benchmark(name, cfg.data_dir), name) for name in cfg.benchmarks]
    cut = []
    for name, problems, source in sets:
        check_unique_ids(problems, source)
        cut.append((name, problems[: cfg.limit] if cfg.limit else problems, {p.id for p in problems}))
    return cut


def current_identity(cfg: EvalConfig) -> dict[str, Any]:
    """What the samples are drawn from (eval/identity.py): the files at --model, or the
    card of the model the server serves (``GET /v1/models``)."""
    if cfg.backend != "openai":
        return model_identity(str(cfg.model), cfg.tokenizer)
    from slowthink.rollout import factory
    from slowthink.rollout.openai_backend import OpenAIBackendError

    client = factory.remote(cfg.base_url or "", cfg.served_model_name, cfg.api_key, 1, cfg.timeout_s, cfg.max_retries)
    try:
        card = pick_card(client.list_models(), cfg.served_model_name, f"{client.base_url}/models")
    except LookupError as exc:
        raise ConfigError(f"served_model_name: {exc}") from None
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
        "template": cfg.template,
        "mode": cfg.mode,
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "max_tokens": decoding.max_tokens,
        "seed": decoding.seed,
        "checker": cfg.checker,
        "answer_fallback": cfg.answer_fallback,
        **cfg.tool_settings(),
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
    write_json(path, {**settings, "backend": cfg.backend, "n": decoding.n})


def resume_mismatch(out: Path, key: str, before: Any, now: Any) -> str:
    if key == "model_identity":
        return (
            f"--out {out} holds samples of another model: they were drawn from {json.dumps(before, sort_keys=True)}, this "
            f"run evaluates {json.dumps(now, sort_keys=True)} (new weights at the same path, or another served model). "
            "Use another --out to evaluate this model"
        )
    return f"--out {out} holds samples drawn with {key}={before!r}; this run asks {key}={now!r}. Use another --out, or the same settings to resume"


def build_backend(cfg: EvalConfig, decoding: Decoding, stack: ExitStack) -> tuple[Any, Any, int | None]:
    """(generator, tokenizer, context length or None) for ``cfg.backend``; closed by ``stack``."""
    from slowthink.models.modeling import load_tokenizer
    from slowthink.rollout import factory

    if cfg.backend == "hf":
        return factory.load_local(str(cfg.model), batch_size=cfg.batch_size * decoding.n)
    if cfg.backend == "openai":
        generator = factory.remote(cfg.base_url or "", cfg.served_model_name, cfg.api_key, cfg.concurrency, cfg.timeout_s, cfg.max_retries)
        stack.callback(generator.close)
        # The generator re-encodes completion text with it when the server sends no token ids.
        generator.tokenizer = tokenizer = load_tokenizer(openai_tokenizer_name(cfg, lambda: generator.model))
        # The server enforces its own context; requests past it come back as errors.
        return generator, tokenizer, None
    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model)
    from slowthink.rollout.vllm_backend import VLLMEngineConfig

    # The RL rollout engine's code; no trainer shares the GPU, so no sleeping between calls.
    engine = VLLMEngineConfig(tensor_parallel_size=cfg.tensor_parallel_size, gpu_memory_utilization=0.9, sleep_mode=False)
    generator = factory.vllm_engine(str(cfg.model), engine, seed=cfg.seed, tokenizer=tokenizer)
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
    if cfg.tools == "none":
        return generator
    from slowthink.rollout.factory import with_tools

    loop = with_tools(generator, tokenizer, cfg.tool_preset, cfg.max_tool_calls, execute=not cfg.tools_no_exec)
    stack.callback(loop.close)  # the sandbox's worker (and the engine, closed again: idempotent)
    return loop


def build_checker(cfg: EvalConfig, stack: ExitStack) -> Any:
    from slowthink.rewards.checkers import make_checker

    checker = make_checker(cfg.checker, workers=cfg.checker_workers, fallback=cfg.answer_fallback)
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
            todo = count_missing(problems, decoding.n, store, tokenizer, cfg.template)
            console.print(f"[bold]{name}[/]: {len(problems)} problems x {decoding.n} samples, {todo} to generate")
            with count_bar(console, cfg.progress, name, todo) as advance:
                records = run_samples(
                    problems,
                    generator,
                    tokenizer,
                    checker,
                    cfg.template,
                    decoding,
                    store,
                    context_length=context,
                    chunk_size=cfg.batch_size,
                    on_sample=advance,
                    record_tools=cfg.tools != "none",
                    known_ids=known_ids,
                )
            summaries[name] = {"benchmark": name, **summarize(records, decoding.n, cfg.mode, checker, cfg.pass_k)}
            if cfg.tools != "none":
                summaries[name].update(tool_summary(records, store))
                console.print(tool_line(summaries[name]))
            write_json(out / name / "summary.json", summaries[name])
    write_json(out / "summary.json", summaries)
    print_table(console, summaries)
    console.print(f"samples and summaries in {out}/")
    return summaries
