"""The ``slowthink distill-tir`` command: options -> ``DistillTIRConfig`` -> ``recipes.distill_tir``.

Must not import torch, transformers or a recipe at module level: the recipe (teacher,
sandbox, checker) is imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer


def distill_tir_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config distill-tir); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. sampling.n=4 sampling.max_injections=2"),
    data: str = typer.Option(None, help="(key data) problems JSONL ({id, problem, answer} rows); required"),
    out: str = typer.Option(None, help="(key out) output JSONL of SFT rows; required; rerunning with the same file resumes"),
    model: str = typer.Option(
        None, "--model", "--teacher", help="(key model) the teacher: 'tiny' (default), a HF model directory or hub name (openai: its tokenizer)"
    ),
    backend: str = typer.Option(None, help="(key backend) hf (default: a local model) or openai (any OpenAI-compatible server)"),
    base_url: str = typer.Option(None, help="(key base_url) server URL for --backend openai, e.g. http://127.0.0.1:8000/v1"),
    api_key: str = typer.Option(None, envvar="OPENAI_API_KEY", help="(key api_key) bearer token for --backend openai"),
    served_model_name: str = typer.Option(
        None, help="(key served_model_name) model name on the server (--backend openai; default: first of /v1/models)"
    ),
    source: str = typer.Option(None, help="(key source) instruct, inject or both (default: inject where instruct kept nothing)"),
    max_tokens: int = typer.Option(None, help="(key max_tokens) tokens per response (default 16384); cut to the context"),
    checker: str = typer.Option(None, help="(key checker) math (default) or exact (string match, the tiny task)"),
    limit: int = typer.Option(None, help="(key limit) only the first N problems"),
    seed: int = typer.Option(None, help="(key seed) seed of sampling and of the injection choices (default 0)"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="(key progress) progress bar on a terminal"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """Distill tool-integrated reasoning data (STILL-3-TOOL, section 4.4) from a teacher into SFT-ready JSONL.

    Two paths: ask the teacher to solve with code, or inject code into its own long thought.
    Only responses with executed code and the right answer are kept. Sampling (n, temperatures,
    top-p, injections) is the `sampling` section: sampling.n=4, sampling.temperature=0.7, ...
    """
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.durable import check_output
    from slowthink.recipes.distill_tir import DistillTIRConfig, progress_path, run_distill_tir

    flags = dict(
        data=data,
        out=out,
        model=model,
        backend=backend,
        base_url=base_url,
        api_key=api_key,
        served_model_name=served_model_name,
        source=source,
        max_tokens=max_tokens,
        checker=checker,
        limit=limit,
        seed=seed,
        progress=progress,
    )
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(DistillTIRConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    # Appending SFT rows to the problems file would corrupt it (durable.py).
    check_output(cfg.out, [cfg.data])
    check_output(progress_path(cfg.out), [cfg.data], "--out's progress file")
    # A user's mistake exits 2, an unreachable server 1, with one message: slowthink/cli/errors.py.
    run_distill_tir(cfg)
