"""LoRA through peft: the adapted policy, its reference with the adapter off, merged weights.

With ``model.lora.r > 0`` the policy is the base model with low-rank adapters on
``model.lora.target_modules`` (``apply_lora``), and every other weight is frozen:

- the optimizer is built over the parameters that train, so it holds the adapters' moments only;
- a checkpoint holds the adapter (``adapter_model.safetensors``, ``adapter_config.json``), not
  the base weights, which ``model.path`` still names (``load_adapter`` restores it);
- the KL reference is the policy itself with the adapter disabled (``AdapterOff``): the base
  model, with no second copy of the weights;
- a generator gets ``W + alpha / r * B @ A`` one tensor at a time (``merged_weight``,
  ``merged_weights``), never a merged copy of the whole model.

peft is imported only when LoRA is on: ``is_lora`` looks for it among the loaded modules.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from slowthink.config import ConfigError
from slowthink.durable import CheckpointError

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def apply_lora(model: Any, config: Any) -> Any:
    """``model`` (a causal LM) with adapters of ``config`` (a ``LoraConfig``) on its target modules.

    Adapter A is drawn from torch's generator (B starts at zero, so the adapted model computes
    what the base does): a run seeded the same draws the same adapter.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    unknown = sorted(set(config.target_modules) - linear)
    if unknown or not config.target_modules:
        raise ConfigError(f"model.lora.target_modules: {unknown or '[]'} name no linear module of the model; its linear modules are {sorted(linear)}")
    peft_config = PeftLoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=list(config.target_modules), task_type="CAUSAL_LM"
    )
    return get_peft_model(model, peft_config)


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)  # DDP keeps the model as .module


def is_lora(model: Any) -> bool:
    """Whether ``model`` (DDP-wrapped or not) is a peft model; False whenever peft was never imported."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(_unwrap(model), peft.PeftModel)


def causal_lm(model: Any) -> Any:
    """The transformers ``ForCausalLM`` module inside a peft model (its adapted linears included), else ``model``."""
    return _unwrap(model).get_base_model() if is_lora(model) else model


class AdapterOff:
    """The policy with its adapter disabled, for the KL reference: the base model, no copy.

    A forward runs under peft's ``disable_adapter()``; everything else (parameters, decoder,
    LM head, memory plan) is the policy's. ``reset_reference`` cannot move it (the base is
    frozen), which is why ``kl.reference_reset_every`` is refused with LoRA (rl_config.py).
    """

    def __init__(self, policy: Any):
        self.policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.disable_adapter():
            return self.policy(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "policy":  # not yet set (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.policy, name)


def merged_weight(linear: Any) -> torch.Tensor:
    """A linear module's effective weight: with active, unmerged LoRA adapters ``W + sum(delta)``
    (a fresh tensor), else its own weight."""
    base = getattr(linear, "base_layer", None)
    if base is None:
        return linear.weight
    weight = base.weight
    if getattr(linear, "merged", False) or getattr(linear, "disable_adapters", False):
        return weight
    for name in linear.active_adapters:
        if name in linear.lora_A:
            weight = weight + linear.get_delta_weight(name).to(weight.dtype)
    return weight


@torch.no_grad()
def merged_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every weight under the base model's Hugging Face names, each adapter
    merged into its tensor as it is reached: what vLLM's ``reload_weights`` takes."""
    base = causal_lm(model)
    modules = dict(base.named_modules())
    for name, tensor in base.state_dict().items():
        owner, _, leaf = name.rpartition(".")
        if ".lora_" in f".{owner}":  # lora_A / lora_B / lora_dropout of an adapted module
            continue
        if owner.endswith(".base_layer"):  # e.g. model.layers.0.self_attn.q_proj.base_layer.weight
            owner = owner.removesuffix(".base_layer")
            if leaf == "weight":
                tensor = merged_weight(modules[owner])
        yield f"{owner}.{leaf}" if owner else leaf, tensor


def load_adapter(model: Any, checkpoint: Path) -> None:
    """Load a checkpoint's adapter into the peft ``model``; the error names the file on a mismatch."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(checkpoint) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} holds no LoRA adapter ({ADAPTER_WEIGHTS}): it was written by a run without model.lora")
    try:
        state = load_file(path)
        result = set_peft_model_state_dict(_unwrap(model), state)
    except Exception as exc:  # a truncated file, or adapters of another rank or target set
        raise CheckpointError(f"{path} does not fit model.lora of this run ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys:
        raise CheckpointError(f"{path} does not fit model.lora of this run: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")


def holds_adapter(checkpoint: Path) -> bool:
    return (Path(checkpoint) / ADAPTER_CONFIG).is_file()
