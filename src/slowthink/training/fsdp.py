"""FSDP2 (``torch.distributed.fsdp.fully_shard``): parameters, gradients and optimizer state sharded over ranks.

DDP keeps a full copy of the weights, gradients and AdamW moments on every rank: 16
bytes a parameter in float32, 24 GB for a 1.5B model before any activation. FSDP2 keeps
1/world of each and all-gathers one decoder layer's weights at a time for its forward
and backward (docs/scale.md). Selected by ``distributed.strategy=fsdp``.

What this module guarantees to the recipes:

* sharding is in place: ``model`` stays the module the recipe holds (the class gains
  ``FSDPModule``), with the same parameter names, and the optimizer built before the
  sharding is pointed at the sharded parameters, its state (a resumed run's) resharded;
* checkpoints are world-size free: a full Hugging Face ``model.safetensors`` gathered from
  the shards, and the optimizer state gathered to the plain ``optimizer.state_dict()``
  layout, so a run saved on 2 ranks resumes on 1 and the other way round.

Gradients are averaged over ranks by the reduce-scatter, as DDP's all-reduce averages
them, so the loss scaling of the recipes is the same for both strategies.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard


def is_sharded(model: Any) -> bool:
    return isinstance(model, FSDPModule)


def shard_model(
    model: torch.nn.Module,
    param_dtype: str | None,
    reduce_dtype: str | None,
    reshard_after_forward: bool,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.nn.Module:
    """Shard each decoder layer, then the rest (embeddings, final norm, LM head) as the root.

    One FSDP unit per layer is what bounds memory: only the layer being computed is ever
    gathered in full. ``optimizer`` (built on the unsharded parameters) is re-pointed at the
    shards and keeps its state.
    """
    # Ranks other than 0 may hold an empty (meta) model: rank 0's weights and optimizer state
    # are then broadcast into everyone's shards after the sharding (``from_rank0``).
    from_rank0 = _any_rank(any(p.is_meta for p in model.parameters()))
    rank0 = dist.get_rank() == 0
    full = model.state_dict() if from_rank0 and rank0 else {}
    # Every rank holds the same full state (the resumed one, or none): each keeps its own copy.
    has_state = optimizer is not None and optimizer.state and (rank0 or not from_rank0)
    before = _full_optimizer_state_fqn(model, optimizer, rank0_only=False) if has_state else None
    names = [name for name, _ in model.named_parameters()]
    index_of = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
    groups = [[index_of[id(p)] for p in group["params"]] for group in optimizer.param_groups] if optimizer is not None else []
    policy = MixedPrecisionPolicy(param_dtype=_dtype(param_dtype), reduce_dtype=_dtype(reduce_dtype))
    for layer in decoder_layers(model):
        fully_shard(layer, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    # The root (embeddings, final norm, LM head) stays gathered from its forward to its
    # backward: the log-probs apply the LM head to the hidden states after the model's
    # forward returns (training/logprobs.py), and the backward needs it again at once.
    fully_shard(model, mp_policy=policy, reshard_after_forward=False)
    if from_rank0:
        _fill_from_rank0(model, full)
        del full
    if optimizer is None:
        return model
    # fully_shard swaps every parameter for a sharded one (same names, same order).
    params = dict(model.named_parameters())
    for group, indices in zip(optimizer.param_groups, groups):
        group["params"] = [params[names[i]] for i in indices]
    optimizer.state.clear()
    if from_rank0 and _any_rank(before is not None):
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_optimizer_state_dict(model, optimizer, before if rank0 else {}, options=options)
    elif before is not None:
        set_optimizer_state_dict(model, optimizer, before, options=StateDictOptions(full_state_dict=True))
    return model


def empty_model(path: str, dtype: str) -> torch.nn.Module:
    """The architecture of ``path`` with no storage (``meta``): what ranks other than 0 load
    under FSDP, so a node holds one full copy of the weights in host memory, not one per rank.
    ``shard_model`` fills its shards from rank 0."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from slowthink.models.modeling import resolve_model_path

    resolved = resolve_model_path(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolved), dtype=getattr(torch, dtype))
    try:  # the stop tokens of generation_config.json, as from_pretrained reads them
        model.generation_config = GenerationConfig.from_pretrained(resolved)
    except OSError:
        pass
    return model


def materialize_like(copy: torch.nn.Module, model: torch.nn.Module, device: torch.device | str) -> None:
    """Give an empty (meta) unsharded copy storage on ``device`` and ``model``'s buffers; its
    weights come from the next sync (``load_state_dict`` of the gathered weights)."""
    copy.to_empty(device=device)
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, buffer in copy.named_buffers():
            buffer.copy_(buffers[name])


def _fill_from_rank0(model: torch.nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Rank 0's full weights (``full``; ``{}`` elsewhere) into every rank's shards, and its buffers
    (the rotary frequencies are not in the state dict) into every rank's."""
    # Every rank, rank 0 too: FSDP2 then re-creates every shard the same way (``full`` keeps
    # rank 0's weights, on the CPU; its buffers are kept here).
    kept = [buffer.detach().clone() for buffer in model.buffers()] if dist.get_rank() == 0 else []
    model.to_empty(device=_mesh_device())
    set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    with torch.no_grad():
        for index, buffer in enumerate(model.buffers()):
            if kept:
                buffer.copy_(kept[index])
            dist.broadcast(buffer, src=0)


def _mesh_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (collective; a one-element all-reduce)."""
    value = torch.tensor([int(flag)], device=_mesh_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def shard_reference(reference: torch.nn.Module, param_dtype: str | None, reshard_after_forward: bool) -> torch.nn.Module:
    """Shard a frozen KL reference as the policy is sharded, stored in the policy's compute dtype.

    A full fp32 replica per GPU cost 30.5 GB at 7B (131 GB at 32B) and computed in fp32
    while the policy computed in bf16: the KL was not zero at step 0. Stored in
    ``param_dtype`` it computes as the policy does and holds half the bytes; its forward is
    collective, so every rank must run it on the same number of micro-batches.
    """
    if param_dtype is not None:
        # Parameters only, as FSDP's mixed precision casts the policy's: buffers (the rotary
        # frequencies) stay as stored, or the two would not compute alike.
        for parameter in reference.parameters():
            parameter.data = parameter.data.to(_dtype(param_dtype))
    return shard_model(reference.requires_grad_(False), None, None, reshard_after_forward)


@torch.no_grad()
def copy_shards(target: torch.nn.Module, source: torch.nn.Module) -> None:
    """Each rank copies its own shards of ``source`` into ``target`` (same model, same sharding): no gather."""
    for module in (source, target):
        module.reshard()  # a gathered root (kept after a no-grad forward) swaps in unsharded parameters
    for (name, to), (other, value) in zip(target.named_parameters(), source.named_parameters(), strict=True):
        if name != other:
            raise ValueError(f"reference and policy parameters differ: {name} vs {other}")
        to.to_local().copy_(value.to_local())


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of a Hugging Face causal LM (``model.model.layers`` for Qwen2)."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ValueError(f"distributed.strategy=fsdp: cannot find the decoder layers of {type(model).__name__}")
    return list(layers)


def full_model_state(model: torch.nn.Module, rank0_only: bool, keep_tied: bool = True) -> dict[str, torch.Tensor]:
    """The unsharded weights (collective: every rank calls it); on CPU and ``{}`` off rank 0 when ``rank0_only``.

    ``keep_tied=False`` keeps a tied weight (the LM head sharing the embeddings) once, under
    its first name, as ``save_pretrained`` writes it; ``load_state_dict`` wants every name.
    """
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=rank0_only))
    tied = set() if keep_tied else _tied_names(model)
    return {name: value for name, value in state.items() if name not in tied}


def _tied_names(model: torch.nn.Module) -> set[str]:
    """Names under which an already-named parameter appears again."""
    seen: set[int] = set()
    tied = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state gathered on rank 0 in ``optimizer.state_dict()``'s layout (collective).

    That layout numbers the parameters in optimizer order; a plain optimizer loads it at
    any world size, and ``shard_model`` reshards it.
    """
    by_name = _full_optimizer_state_fqn(model, optimizer, rank0_only=True)
    if not by_name:  # off rank 0 (cpu_offload keeps the gathered copy on rank 0 only)
        return {}
    number: dict[str, int] = {}
    groups = []
    for group in by_name["param_groups"]:
        ids = [number.setdefault(name, len(number)) for name in group["params"]]
        groups.append({**group, "params": ids})
    state = {number[name]: value for name, value in by_name["state"].items()}
    return {"state": state, "param_groups": groups}


def _full_optimizer_state_fqn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank0_only: bool) -> dict[str, Any]:
    # Keyed by parameter name, which sharding does not change.
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=rank0_only))


def _dtype(name: str | None) -> torch.dtype | None:
    return getattr(torch, name) if name else None
