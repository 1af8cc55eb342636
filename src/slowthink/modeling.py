"""Loading a causal LM and its tokenizer: the embedded tiny default, a local path, or a hub name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

TINY = "tiny"


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message names the path or name."""


def set_torch_threads(threads: int | None = None) -> int:
    """Size torch's intra-op threads (default: $SLOWTHINK_TORCH_THREADS, else all cores, at most 8)."""
    import torch

    if threads is None:
        threads = int(os.environ.get("SLOWTHINK_TORCH_THREADS", "0")) or min(os.cpu_count() or 1, 8)
    torch.set_num_threads(threads)
    return threads


def tiny_path(cache_dir: str | Path | None = None) -> Path:
    """Where the tiny default is saved (built on first use, deterministic from seed 0)."""
    from slowthink.tiny import save_tiny

    root = Path(cache_dir or os.environ.get("SLOWTHINK_CACHE", Path.home() / ".cache" / "slowthink"))
    path = root / "tiny-qwen2"
    if not (path / "config.json").is_file():
        # Build beside the target and rename: concurrent first uses never see half a model.
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_tiny(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve_model_path(name_or_path: str) -> str:
    """``tiny`` -> the embedded default; an existing directory as is; else a hub name."""
    if name_or_path == TINY:
        return str(tiny_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model path {path} has no config.json: not a Hugging Face model directory")
        return str(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path:
        raise ModelLoadError(f"model path not found: {name_or_path}")
    return name_or_path


def _quiet_transformers() -> None:
    # Weight-loading progress bars would bury our own progress display.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    _quiet_transformers()

    resolved = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except OSError as exc:
        raise ModelLoadError(f"cannot load tokenizer from '{name_or_path}': {exc}") from None
    # Left padding for batched generation; a pad token for models that lack one.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    resolved = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelLoadError(f"cannot load model from '{name_or_path}': {exc}") from None
    return model.to(device)


def load_model_and_tokenizer(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """The model (eval mode off: callers choose) and its tokenizer."""
    return load_model(name_or_path, dtype, device), load_tokenizer(name_or_path)
