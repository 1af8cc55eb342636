"""The ``slowthink serve`` command: options -> ``ServeConfig`` -> ``slowthink.serve.server.serve``.

Must not import torch, transformers, uvicorn or fastapi at module level: the server is
imported when the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

from pathlib import Path

import typer


def serve_cli(
    config: Path | None = typer.Argument(None, help="YAML config (keys: slowthink config serve); optional."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. max_sequences=64 chunk_tokens=16"),
    model: str = typer.Option(None, help="(key model) 'tiny' (default), a local HF model directory, or a hub name"),
    host: str = typer.Option(None, help="(key host) interface to bind (default 127.0.0.1: this machine only)"),
    port: int = typer.Option(None, help="(key port) TCP port (default 8000)"),
    served_model_name: str = typer.Option(None, help="(key served_model_name) name clients send as 'model' (default: --model)"),
    batch_size: int = typer.Option(None, help="(key batch_size) sequences decoded together (default 64)"),
    default_max_tokens: int = typer.Option(
        None, help="(key default_max_tokens) chat max_tokens when a request gives none (default: the context that remains)"
    ),
    max_sequences: int = typer.Option(None, help="(key max_sequences) per request: prompts x n above this is refused (default 256)"),
    max_tokens_limit: int = typer.Option(None, help="(key max_tokens_limit) per request: max_tokens above this is refused (default 4096)"),
    chunk_tokens: int = typer.Option(None, help="(key chunk_tokens) tokens a batch decodes per turn before the next request's (default 8)"),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions) on CPU."""
    from slowthink.cli.command_config import print_config
    from slowthink.config.load import load_config, split_config_argument
    from slowthink.serve.server import ServeConfig, serve

    flags = dict(
        model=model,
        host=host,
        port=port,
        served_model_name=served_model_name,
        batch_size=batch_size,
        default_max_tokens=default_max_tokens,
        max_sequences=max_sequences,
        max_tokens_limit=max_tokens_limit,
        chunk_tokens=chunk_tokens,
    )
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
