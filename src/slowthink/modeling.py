"""Loading a causal LM and its tokenizer: the embedded tiny default, a local path, or a hub name."""

from __future__ import annotations

import json
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
    from slowthink.tiny import save_tiny, tiny_fingerprint

    root = Path(cache_dir or os.environ.get("SLOWTHINK_CACHE", Path.home() / ".cache" / "slowthink"))
    path = root / f"tiny-qwen2-{tiny_fingerprint()}"
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


def quiet_transformers() -> None:
    # Weight-loading progress bars would bury our own progress display.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _generic_fast_tokenizer(path: str) -> bool:
    config = Path(path) / "tokenizer_config.json"
    if not config.is_file():
        return False
    return json.loads(config.read_text()).get("tokenizer_class") in ("PreTrainedTokenizerFast", "TokenizersBackend")


def _hub_hint(resolved: str) -> str:
    # A name that is no local directory was tried as a hub id: say so, since a mistyped
    # relative path ("runs/x") otherwise reads like a network problem.
    return "" if Path(resolved).exists() else " (no such local directory; tried as a Hugging Face hub name)"


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    quiet_transformers()

    resolved = resolve_model_path(name_or_path)
    # A plain tokenizers-backed tokenizer (the tiny default's) must load as itself: AutoTokenizer
    # would pick the model type's class (Qwen2Tokenizer) and replace its pre-tokenizer.
    loader = PreTrainedTokenizerFast if _generic_fast_tokenizer(resolved) else AutoTokenizer
    try:
        tokenizer = loader.from_pretrained(resolved)
    except OSError as exc:
        raise ModelLoadError(f"cannot load tokenizer from '{name_or_path}'{_hub_hint(resolved)}: {exc}") from None
    # Left padding for batched generation; a pad token for models that lack one.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"model.device={device} but no CUDA device is available; use model.device=cpu")
    resolved = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelLoadError(f"cannot load model from '{name_or_path}'{_hub_hint(resolved)}: {exc}") from None
    return model.to(device)


def load_model_and_tokenizer(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """The model (eval mode off: callers choose) and its tokenizer."""
    return load_model(name_or_path, dtype, device), load_tokenizer(name_or_path)
