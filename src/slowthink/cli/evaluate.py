"""The ``slowthink eval`` command: options -> ``EvalConfig`` -> ``recipes.evaluate.evaluate``.

Must not import torch, transformers or a recipe at module level: the recipe (and through it
the backends) is imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("model"),
    flag("tokenizer"),
    flag("data.benchmarks", "--benchmark", "-b"),
    flag("data.file", "--data"),
    flag("data.benchmark_dir", "--data-dir"),
    flag("sampling.mode"),
    flag("sampling.n"),
    flag("sampling.temperature"),
    flag("sampling.top_p"),
    flag("sampling.max_tokens"),
    flag("data.template"),
    flag("backend.kind", "--backend"),
    flag("backend.base_url"),
    flag("backend.api_key", envvar="OPENAI_API_KEY"),
    flag("backend.concurrency"),
    flag("backend.batch_size"),
    flag("checker.kind", "--checker"),
    flag("out"),
    flag("data.limit"),
    flag("sampling.seed"),
    flag("pass_k"),
    flag("progress", "--progress/--no-progress"),
    flag("tools.kind", "--tools"),
    flag("tools.preset", "--tool-preset"),
    flag("tools.max_tool_calls"),
    # --tools-no-exec, the flag there always was, sets tools.execute=false.
    flag("tools.execute", "--tools-exec/--tools-no-exec"),
)
def eval_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config eval); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. backend.tensor_parallel_size=2 checker.answer_fallback=true"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Evaluate a model on math benchmarks (pass@1, maj@n, pass@k, lengths, completion and keyword ratios).

    Writes per-sample JSONL and summary JSON under --out; rerunning with the same --out resumes.
    Each flag sets the key named in its help (key ...); every other key (backend.tensor_parallel_size,
    checker.answer_fallback, backend.served_model_name, backend.timeout_s, ...) is set in the YAML file or as key=value.
    """
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.durable import check_output
    from slowthink.recipes.evaluate import EvalConfig, evaluate

    # A bad key or value is a ConfigError: one message, exit 2 (cli/errors.py).
    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(EvalConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    # --out is a folder of samples and summaries: never the --data file, nor one it overwrites (durable.py).
    check_output(cfg.out, [cfg.data.file])
    check_output(Path(cfg.out) / "summary.json", [cfg.data.file])
    # The user's to fix (a bad data row, other settings in --out, --out in use, a missing model,
    # vLLM absent) exits 2; an unreachable server or sandbox 1; one message: slowthink/cli/errors.py.
    evaluate(cfg)
