"""The ``slowthink distill-tir`` command: options -> ``DistillTIRConfig`` -> ``recipes.distill_tir``.

Must not import torch, transformers or a recipe at module level: the recipe (teacher,
sandbox, checker) is imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("data.file", "--data"),
    flag("out"),
    flag("model", "--model", "--teacher"),
    flag("backend.kind", "--backend"),
    flag("backend.base_url"),
    flag("backend.api_key", envvar="OPENAI_API_KEY"),
    flag("backend.served_model_name"),
    flag("source"),
    flag("sampling.max_tokens"),
    flag("checker.kind", "--checker"),
    flag("data.limit"),
    flag("seed"),
    flag("progress", "--progress/--no-progress"),
)
def distill_tir_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config distill-tir); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. sampling.n=4 sampling.max_injections=2"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Distill tool-integrated reasoning data (STILL-3-TOOL, section 4.4) from a teacher into SFT-ready JSONL.

    Two paths: ask the teacher to solve with code, or inject code into its own long thought.
    Only responses with executed code and the right answer are kept. Sampling (n, temperatures,
    top-p, tokens, injections) is the `sampling` section: sampling.n=4, sampling.temperature=0.7, ...
    """
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.durable import check_output
    from slowthink.recipes.distill_tir import DistillTIRConfig, progress_path, run_distill_tir

    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(DistillTIRConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    # Appending SFT rows to the problems file would corrupt it (durable.py).
    check_output(cfg.out, [cfg.data.file])
    check_output(progress_path(cfg.out), [cfg.data.file], "--out's progress file")
    # A user's mistake exits 2, an unreachable server 1, with one message: slowthink/cli/errors.py.
    run_distill_tir(cfg)
