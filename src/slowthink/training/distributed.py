"""The only module that knows torch.distributed: DDP or FSDP2 over gloo (CPU) or nccl (GPU), via torchrun.

Launch: ``torchrun --nproc-per-node 2 -m slowthink.cli rl CONFIG``. Each rank rolls out
its own share of the prompts; loss denominators are summed over ranks before the
backward pass, so the update equals the single-process update on the whole batch.
``distributed.strategy`` chooses how the ranks hold the model: ``ddp`` a full copy each,
``fsdp`` a shard each (slowthink.training.fsdp).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import Field, model_validator

from slowthink.config import StrictConfig

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


class DistributedConfig(StrictConfig):
    """DDP or FSDP2 over torchrun's ranks (training/distributed.py).

    How several ranks hold and train one model; a single process ignores it."""

    strategy: Literal["ddp", "fsdp"] = "ddp"
    """ddp: every rank keeps all weights, gradients and optimizer state; fsdp: FSDP2 shards
    them over the ranks (for models whose training state does not fit one device)."""
    param_dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """FSDP mixed precision: dtype the gathered weights compute in (None = as stored,
    model.dtype) and dtype gradients are reduced in (None = the compute dtype). The
    sharded weights and the optimizer stay in model.dtype."""
    reduce_dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """FSDP: dtype gradients are reduced in (null: the compute dtype)."""
    reshard_after_forward: bool = True
    """FSDP: free each layer's gathered weights after its forward and gather them again for
    the backward (less memory, one more all-gather per layer)."""
    timeout_minutes: float = Field(120.0, gt=0)
    """Minutes a collective may wait for the slowest rank before the run fails. nccl's own
    default (10) is shorter than this design's waits: ranks whose long chains of thought
    finish later, and rank 0 writing and hashing a large checkpoint while the others wait."""
    checkpoint_format: Literal["auto", "full", "sharded"] = "auto"
    """full: rank 0 gathers the weights and optimizer state into a Hugging Face checkpoint (12
    bytes a parameter of host memory on one node at every save); sharded: every rank writes
    its own shards with torch.distributed.checkpoint, nothing gathered, resumable at any
    world size (docs/scale.md); auto: sharded under FSDP on several ranks from 1B
    parameters, full otherwise."""
    async_save: bool = False
    """sharded checkpoints: write in a background thread while training goes on; the
    previous checkpoint stays the one a resume finds until the new one is complete."""

    @model_validator(mode="after")
    def _check(self) -> DistributedConfig:
        if self.strategy == "ddp" and (self.param_dtype or self.reduce_dtype or not self.reshard_after_forward):
            raise ValueError("distributed.param_dtype, reduce_dtype and reshard_after_forward apply to distributed.strategy=fsdp only")
        if self.async_save and self.checkpoint_format == "full":
            raise ValueError("distributed.async_save applies to sharded checkpoints: set distributed.checkpoint_format=sharded or auto")
        return self


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # this process group was started by init_distributed (so shutdown ends it)
    # A gloo group for the CPU-side object collectives and barriers (None: the default group).
    objects: Any = field(default=None, compare=False, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(config: DistributedConfig = DistributedConfig()) -> DistInfo:
    """Join the process group torchrun describes in the environment; single process otherwise.

    Every collective waits up to ``config.timeout_minutes``. Under nccl the object
    collectives and barriers (metrics, selection outcomes, the checkpoint barrier) run on
    a gloo group of their own: they pickle on the CPU, and a barrier there holds no GPU stream.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if "TORCHELASTIC_RUN_ID" in os.environ:
        die_with_agent()
    owns_group = not dist.is_initialized()
    timeout = timedelta(minutes=config.timeout_minutes)
    objects = None
    if owns_group:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        device_id = None
        if backend == "nccl":
            # One GPU per rank, bound at init: nccl connects eagerly to it, and no collective
            # can guess another device.
            device_id = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device_id)
        dist.init_process_group(backend=backend, timeout=timeout, device_id=device_id)
        if backend == "nccl":
            objects = dist.new_group(backend="gloo", timeout=timeout)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), owns_group=owns_group, objects=objects)


def die_with_agent() -> None:
    """Ask the kernel to SIGKILL this rank when its torchrun agent dies (Linux; elsewhere nothing).

    torchrun starts every rank in a session of its own, so killing a node's agent (its process
    group: a job step ended, an OOM kill, a person) left the node's ranks running. They
    trained on with the other nodes to the end, writing the run directory, and the head's
    agent then waited 300 s in torchrun's exit barrier for the agent that was gone. A rank
    now goes with its agent, as on a lost node: the other nodes' collectives fail at once
    (the peer's connections close) and their agents exit, ready for ``--resume``.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def wrap_model(model: Any, info: DistInfo, config: DistributedConfig = DistributedConfig(), optimizer: Any = None) -> Any:
    """The module to train: DDP-wrapped, or FSDP2-sharded in place, when there are several ranks.

    A single process trains the plain module. ``optimizer``, built on the unsharded
    parameters (and possibly loaded from a checkpoint), follows the parameters into their
    shards; DDP keeps the parameters, so it needs nothing.
    """
    if not info.enabled:
        return model
    if config.strategy == "fsdp":
        from slowthink.training.fsdp import shard_model

        return shard_model(model, config.param_dtype, config.reduce_dtype, config.reshard_after_forward, optimizer)
    from torch.nn.parallel import DistributedDataParallel

    # Gradients as views of DDP's all-reduce buckets: one copy of them, not two.
    return DistributedDataParallel(model, gradient_as_bucket_view=True)


def shards_over_ranks(info: DistInfo, config: DistributedConfig) -> bool:
    """Whether the model is FSDP-sharded over several ranks (``wrap_model``)."""
    return info.enabled and config.strategy == "fsdp"


def load_device(device: str, info: DistInfo, config: DistributedConfig = DistributedConfig()) -> str:
    """Where a recipe loads its model: the CPU under FSDP on several ranks, else ``device``.

    ``fully_shard`` moves each layer to the GPU as it shards it, so the GPU never holds the
    whole unsharded model (131 GB at 32B in fp32), nor does the reference copy, and a vLLM
    engine started before the sharding sees the GPU free.
    """
    return "cpu" if shards_over_ranks(info, config) else device


def wrap_reference(reference: Any, info: DistInfo, config: DistributedConfig = DistributedConfig()) -> Any:
    """The KL reference as the ranks hold it: sharded like the policy (in its compute dtype)
    under FSDP, else the frozen copy itself. Call it after the policy's ``wrap_model``."""
    if not isinstance(reference, torch.nn.Module) or not info.enabled or config.strategy != "fsdp":
        return reference  # None, or a view of the policy (LoRA's adapter-off base): nothing to shard
    from slowthink.training.fsdp import shard_reference

    return shard_reference(reference, config.param_dtype, config.reshard_after_forward)


def reset_reference(reference: Any, model: Any) -> None:
    """The reference takes the policy's current weights (section 4.3): shard to shard when
    both are sharded, from the weights themselves otherwise."""
    if is_sharded(reference):
        from slowthink.training.fsdp import copy_shards

        copy_shards(unwrap(reference), unwrap(model))
        return
    unwrap(reference).load_state_dict(full_weights(model))


def done_with_reference(reference: Any) -> None:
    """Free the sharded reference's gathered root (embeddings, LM head) after its forwards:
    the root stays gathered after a forward so the log-probs can apply the LM head."""
    if is_sharded(reference):
        unwrap(reference).reshard()


def unwrap(model: Any) -> Any:
    """The model itself: DDP's ``.module``; a sharded model is its own (FSDP2 works in place)."""
    return getattr(model, "module", model)


def is_sharded(model: Any) -> bool:
    from slowthink.training.fsdp import is_sharded as fsdp_sharded

    return fsdp_sharded(unwrap(model))


def checkpoint_states(model: Any, optimizer: Any, info: DistInfo) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(full weights, full optimizer state) on rank 0, (None, None) elsewhere.

    Collective when the model is sharded: every rank must call it. Weights are None for an
    unsharded model (``save_pretrained`` reads its own). The optimizer state is in
    ``optimizer.state_dict()``'s layout whatever the strategy, so any world size resumes it.
    """
    if is_sharded(model):
        from slowthink.training.fsdp import full_model_state, full_optimizer_state

        weights = full_model_state(unwrap(model), rank0_only=True, keep_tied=False)
        optim_state = full_optimizer_state(unwrap(model), optimizer)
        return (weights, optim_state) if info.is_main else (None, None)
    if not info.is_main:
        return None, None
    return None, optimizer.state_dict()


def weights_for_checkpoint(model: Any, info: DistInfo) -> dict[str, Any] | None:
    """Every weight (tied ones under each name) on rank 0, None elsewhere; collective when sharded."""
    if is_sharded(model):
        from slowthink.training.fsdp import full_model_state

        weights = full_model_state(unwrap(model), rank0_only=True)
        return weights if info.is_main else None
    return unwrap(model).state_dict() if info.is_main else None


@torch.no_grad()
def copy_full_weights(target: torch.nn.Module, model: Any) -> None:
    """``model``'s weights into ``target`` (an unsharded copy, e.g. an HF engine's), gathered
    one tensor at a time when sharded: no rank ever holds a second whole model on its GPU."""
    into = target.state_dict()  # tensors sharing the parameters' storage
    for name, value in unwrap(model).state_dict().items():
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()  # collective: every rank gathers the same tensor in turn
        into[name].copy_(value)


def full_weights(model: Any) -> dict[str, Any]:
    """The full weights on every rank (collective when sharded): for a reference model or an engine copy."""
    if is_sharded(model):
        from slowthink.training.fsdp import full_model_state

        return full_model_state(unwrap(model), rank0_only=False)
    return unwrap(model).state_dict()


def collective_device() -> torch.device:
    """Where a collective's tensors must live: the current GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.all_reduce(tensor)
    return float(tensor.item())


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj, group=info.objects)
    return out


def reduce_across_ranks(metrics: dict[str, float | None], info: DistInfo) -> dict[str, float | None]:
    """Mean of every metric over ranks (each rank saw its own share of prompts); None
    (nothing to measure this step, e.g. no update) stays None. Single process: {}."""
    if not info.enabled:
        return {}
    gathered = all_gather_objects(metrics, info)
    reduced: dict[str, float | None] = {}
    for key in metrics:
        values = [m.get(key) for m in gathered]
        if all(key in m for m in gathered):
            reduced[key] = None if any(v is None for v in values) else sum(values) / len(values)
    return reduced


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=info.objects)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier(group=info.objects)


def shutdown(info: DistInfo) -> None:
    """End the process group a recipe started, once every rank is done with it.

    A torchrun rank that exits with its gloo group alive can abort in the group's
    destructor ("terminate called without an active exception", SIGABRT), and torchrun
    then kills the other ranks, mid-checkpoint if they are still writing. A group the
    caller started (tests, a notebook) is left to the caller.
    """
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
