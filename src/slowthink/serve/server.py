"""``slowthink serve``: load a model and run the OpenAI-compatible server until interrupted.

``ServeConfig`` is the command's config; ``serve`` loads the model on CPU, builds the
FastAPI application (``slowthink.serve.app``) over its ``HFGenerator`` and runs uvicorn.
"""

from __future__ import annotations

from pydantic import Field

from slowthink.config import StrictConfig


def serve(
    model: str = "tiny",
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    default_max_tokens: int | None = None,
    batch_size: int = 64,
    max_sequences: int = 256,
    max_tokens_limit: int = 4096,
    chunk_tokens: int = 8,
) -> None:
    """Load ``model`` (``tiny``, a directory or a hub name) on CPU and serve it until interrupted."""
    import uvicorn

    from slowthink.models.modeling import load_model_and_tokenizer, set_torch_threads
    from slowthink.rollout.factory import hf_engine

    threads = set_torch_threads()
    loaded, tokenizer = load_model_and_tokenizer(model)
    loaded.eval()
    context = getattr(loaded.config, "max_position_embeddings", None)
    name = served_model_name or model
    from slowthink.serve.app import create_app

    app = create_app(
        hf_engine(loaded, tokenizer, batch_size=batch_size),
        tokenizer,
        name,
        context,
        default_max_tokens,
        max_sequences,
        max_tokens_limit,
        chunk_tokens,
    )
    print(f"slowthink serve: model '{name}' (context {context}, {threads} torch threads) at http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


class ServeConfig(StrictConfig):
    """Everything ``slowthink serve`` needs: a YAML file, the flags, or key=value overrides."""

    model: str = "tiny"
    """'tiny' (embedded), a local Hugging Face model directory, or a hub name."""
    host: str = "127.0.0.1"
    """Interface to bind (127.0.0.1: this machine only)."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port."""
    served_model_name: str | None = None
    """Name clients send as 'model' (null: the model key's value)."""
    default_max_tokens: int | None = Field(None, ge=1)
    """Chat max_tokens when a request gives none (null: the context that remains)."""
    batch_size: int = Field(64, ge=1)
    """Sequences decoded together."""
    max_sequences: int = Field(256, ge=1)
    """Per request: prompts x n above this is refused (400)."""
    max_tokens_limit: int = Field(4096, ge=1)
    """Per request: max_tokens above this is refused (400)."""
    chunk_tokens: int = Field(8, ge=1)
    """Tokens a batch decodes per turn before the next request's (fairness between requests)."""
