"""The ``slowthink serve`` command: options -> ``ServeConfig`` -> ``slowthink.serve.server.serve``.

Must not import torch, transformers, uvicorn or fastapi at module level: the server is
imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slowthink.cli.command_config import config_flags, flag


@config_flags(
    flag("model"),
    flag("host"),
    flag("port"),
    flag("served_model_name"),
    flag("batch_size"),
    flag("default_max_tokens"),
    flag("max_sequences"),
    flag("max_tokens_limit"),
    flag("chunk_tokens"),
)
def serve_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config serve); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. max_sequences=64 chunk_tokens=16"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    flags: dict[str, Any] | None = None,
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions) on CPU."""
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.serve.server import ServeConfig, serve

    path, overrides = split_config_argument(config, overrides)
    cfg = load_config(ServeConfig, path, overrides, flags)
    if show_config:
        print_config(cfg)
    # A model that cannot load is the user's mistake: exit 2, one message (slowthink/cli/errors.py).
    serve(
        cfg.model,
        cfg.host,
        cfg.port,
        cfg.served_model_name,
        cfg.default_max_tokens,
        cfg.batch_size,
        cfg.max_sequences,
        cfg.max_tokens_limit,
        cfg.chunk_tokens,
    )
