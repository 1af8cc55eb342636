"""The one place rollout engines are built: local (HF), remote (OpenAI-compatible), vLLM, and
the tool loop around any of them.

Must not import recipes or the CLI (tests/test_layers.py). Each engine's module (transformers,
httpx, vLLM, the sandbox) is imported only when that engine is asked for.

- ``load_local``: load a model for generation only (eval, distill-tir's teacher): threads
  set for this machine, eval mode; returns the engine, its tokenizer and its context length.
- ``remote``: an ``OpenAIGenerator`` for a served model (vLLM, SGLang, ``slowthink serve``).
- ``vllm_engine``: a ``VLLMGenerator`` (RL rollouts and ``eval --backend vllm``).
- ``with_tools``: the engine inside the tool loop (section 4.4), with its own sandbox
  unless code is never executed; ``loop.close()`` stops the sandbox and closes the engine.
"""

from __future__ import annotations

from typing import Any


def hf_engine(model: Any, tokenizer: Any, batch_size: int, fast: bool = True, dtype: str | None = None) -> Any:
    """An ``HFGenerator`` over a module already loaded (RL's trainer model, or a copy of it);
    ``dtype`` the fast path's compute dtype (None: the weights')."""
    from slowthink.rollout.hf import HFGenerator

    return HFGenerator(model, tokenizer, batch_size=batch_size, fast=fast, dtype=dtype)


def load_local(path: str, batch_size: int) -> tuple[Any, Any, int | None]:
    """(engine, tokenizer, context length or None) for a local model used only to generate."""
    from slowthink.models.modeling import load_model_and_tokenizer, set_torch_threads

    set_torch_threads()
    model, tokenizer = load_model_and_tokenizer(path)
    model.eval()
    context = getattr(model.config, "max_position_embeddings", None)
    return hf_engine(model, tokenizer, batch_size), tokenizer, context


def remote(
    base_url: str, served_model_name: str | None, api_key: str | None, concurrency: int, timeout_s: float, max_retries: int = 3, tokenizer: Any = None
) -> Any:
    """An ``OpenAIGenerator``; ``served_model_name`` None asks the server's /v1/models."""
    from slowthink.rollout.openai_backend import OpenAIGenerator

    return OpenAIGenerator(
        base_url, model=served_model_name, api_key=api_key, concurrency=concurrency, timeout_s=timeout_s, max_retries=max_retries, tokenizer=tokenizer
    )


def vllm_engine(model: str, engine: Any, seed: int, tokenizer: Any, dtype: str = "auto", keep_weights_of: Any = None) -> Any:
    """A ``VLLMGenerator`` (``engine``: a ``VLLMEngineConfig``)."""
    from slowthink.rollout.vllm_backend import VLLMGenerator

    return VLLMGenerator(model, engine, dtype=dtype, seed=seed, tokenizer=tokenizer, keep_weights_of=keep_weights_of)


def with_tools(engine: Any, tokenizer: Any, preset: str | None, max_tool_calls: int | None, execute: bool = True) -> Any:
    """``engine`` inside the tool loop; with ``execute=False`` no sandbox starts (the paper's
    "code written but not executed" ablation)."""
    from slowthink.rollout.tool_loop import ToolLoop, ToolLoopConfig, sandbox_config_for

    preset = preset or "default"
    sandbox = None
    if execute:
        from slowthink.sandbox import ProcessSandbox

        sandbox = ProcessSandbox(sandbox_config_for(preset))
    return ToolLoop(engine, sandbox, tokenizer, ToolLoopConfig(preset=preset, max_tool_calls=max_tool_calls, execute=execute))
