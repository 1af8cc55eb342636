"""The ``slowthink eval`` command: options -> ``EvalConfig`` -> ``recipes.evaluate.evaluate``.

Must not import torch, transformers or a recipe at module level: the recipe (and through it
the backends) is imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer

from slowthink.data.prompts import TEMPLATE_NAMES
from slowthink.eval.benchmarks import BENCHMARK_NAMES


def eval_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config eval); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. tensor_parallel_size=2 answer_fallback=true"),
    model: str = typer.Option(
        None, help="(key model) 'tiny' (default for hf/vllm), a local HF model directory or a hub name; with --backend openai it names the tokenizer"
    ),
    tokenizer: str = typer.Option(None, help="(key tokenizer) tokenizer for the prompts (default: --model's)"),
    benchmark: list[str] = typer.Option([], "--benchmark", "-b", help=f"(key benchmarks) repeatable; one of {', '.join(BENCHMARK_NAMES)}"),
    data: str = typer.Option(
        None,
        help="(key data) problems instead of --benchmark: a .jsonl/.parquet/.arrow/.csv/.json file, a dataset folder or a Hub id OWNER/NAME[:CONFIG][@SPLIT]; map other column names with columns={problem: question}",
    ),
    data_dir: str = typer.Option(None, help="(key data_dir) folder with local JSONL copies of the named benchmarks (offline)"),
    mode: str = typer.Option(None, help="(key mode) greedy (default: 1 sample, T=0) or sampled (paper: n=8, T=0.6, top-p 0.95)"),
    n: int = typer.Option(None, help="(key n) samples per problem (sampled mode; default 8)"),
    temperature: float = typer.Option(None, help="(key temperature) sampling temperature (sampled mode; default 0.6)"),
    top_p: float = typer.Option(None, help="(key top_p) nucleus sampling p (sampled mode; default 0.95)"),
    max_tokens: int = typer.Option(None, help="(key max_tokens) generated tokens per response (default 32768, the paper's)"),
    template: str = typer.Option(None, help=f"(key template) prompt template (default chat): {', '.join(TEMPLATE_NAMES)}"),
    backend: str = typer.Option(None, help="(key backend) hf (default), openai (any OpenAI-compatible server), vllm"),
    base_url: str = typer.Option(None, help="(key base_url) server URL for --backend openai, e.g. http://127.0.0.1:8000/v1"),
    api_key: str = typer.Option(None, envvar="OPENAI_API_KEY", help="(key api_key) bearer token for --backend openai"),
    concurrency: int = typer.Option(None, help="(key concurrency) requests in flight (--backend openai; default 8)"),
    batch_size: int = typer.Option(None, help="(key batch_size) prompts per generate call (hf/vllm; default 16)"),
    checker: str = typer.Option(None, help="(key checker) math (default) or exact (string match)"),
    out: str = typer.Option(None, help="(key out) output folder (default runs/eval); rerunning with the same folder resumes"),
    limit: int = typer.Option(None, help="(key limit) only the first N problems of each benchmark"),
    seed: int = typer.Option(None, help="(key seed) sampling seed (default 0)"),
    pass_k: list[int] = typer.Option([], "--pass-k", help="(key pass_k) repeatable: report pass@k for this k too (<= n); 1, 2, 4, ... and n always"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="(key progress) progress bar on a terminal (default on)"),
    tools: str = typer.Option(None, help="(key tools) python: run code blocks in the sandbox and show their output (section 4.4)"),
    tool_preset: str = typer.Option(None, help="(key tool_preset) tool format with --tools python: default or still3"),
    max_tool_calls: int = typer.Option(None, help="(key max_tool_calls) code blocks executed per response (default: no limit)"),
    tools_no_exec: bool | None = typer.Option(None, "--tools-no-exec", help="(key tools_no_exec) ablation: code is written but never executed"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """Evaluate a model on math benchmarks (pass@1, maj@n, pass@k, lengths, completion and keyword ratios).

    Writes per-sample JSONL and summary JSON under --out; rerunning with the same --out resumes.
    Each flag sets the key named in its help (key ...); every other key (tensor_parallel_size, answer_fallback,
    served_model_name, timeout_s, ...) is set in the YAML file or as key=value.
    """
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.durable import check_output
    from slowthink.recipes.evaluate import EvalConfig, evaluate

    flags = dict(
        model=model,
        tokenizer=tokenizer,
        benchmarks=benchmark,
        data=data,
        data_dir=data_dir,
        mode=mode,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        template=template,
        backend=backend,
        base_url=base_url,
        api_key=api_key,
        concurrency=concurrency,
        batch_size=batch_size,
        checker=checker,
        out=out,
        limit=limit,
        seed=seed,
        pass_k=pass_k,
        progress=progress,
        tools=tools,
        tool_preset=tool_preset,
        max_tool_calls=max_tool_calls,
        tools_no_exec=tools_no_exec,
    )
    # A bad key or value is a ConfigError: one message, exit 2 (cli/errors.py).
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(EvalConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    # --out is a folder of samples and summaries: never the --data file, nor one it overwrites (durable.py).
    check_output(cfg.out, [cfg.data])
    check_output(Path(cfg.out) / "summary.json", [cfg.data])
    # The user's to fix (a bad data row, other settings in --out, --out in use, a missing model,
    # vLLM absent) exits 2; an unreachable server or sandbox 1; one message: slowthink/cli/errors.py.
    evaluate(cfg)
