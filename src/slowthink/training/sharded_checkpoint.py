"""Sharded checkpoints: every rank writes its own shards with ``torch.distributed.checkpoint`` (DCP).

The full format (training/checkpoint.py) gathers the weights and the AdamW moments to rank 0:
12 bytes a parameter of host memory on one node at every save, about 394 GB at 32B. Here no
rank gathers anything: each writes the shards it holds, and DCP's metadata records every
tensor's global shape, so any world size reads them back (DCP reshards on load).

Layout (the same directory protocol as the full format)::

    run/checkpoints/step_000010/
        sharded/.metadata, sharded/__0_0.distcp, __1_0.distcp ...   # model, optimizer (and KL reference)
        config.json, generation_config.json, tokenizer files       # rank 0; what export needs
        trainer_state.pt                                          # step, schedule, RNG, data position
        manifest.json                                             # written last, by rank 0

Every rank writes into ``step_NNNNNN.tmp``. Once all have finished (a barrier), rank 0 writes the
manifest, fsyncs and renames the directory and moves ``latest``: a SIGKILL at any point
leaves the previous checkpoint the one a resume finds, and resume verifies the manifest and
falls back as for the full format. The run directory must be on a file system every node sees.

``async_save``: the state is copied to host memory, then written by a background thread
while training goes on; the checkpoint is published at the next save or at the end of the
run (``finish``). Until then ``latest`` still names the previous checkpoint.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from slowthink.config import ConfigError
from slowthink.durable import NoSpaceError, follow_umask, fsync_tree, is_no_space
from slowthink.training.checkpoint import SHARDED_DIR, is_sharded_checkpoint, publish_checkpoint, write_manifest
from slowthink.training.distributed import DistInfo, DistributedConfig, barrier, unwrap

# From here a full save's gather (12 bytes a parameter on rank 0's host) is worth avoiding.
AUTO_SHARDED_PARAMETERS = 1_000_000_000


def choose_format(config: DistributedConfig, world_size: int, parameters: int) -> str:
    """``full`` or ``sharded``: the configured one, or under ``auto`` sharded for FSDP on
    several ranks from 1B parameters (a tiny or single-process run keeps the plain HF checkpoint)."""
    if config.checkpoint_format != "auto":
        return config.checkpoint_format
    fsdp = config.strategy == "fsdp" and world_size > 1
    return "sharded" if fsdp and parameters >= AUTO_SHARDED_PARAMETERS else "full"


def sharded_writer(run_dir: Path, info: DistInfo, config: DistributedConfig, keep_last: int, model: Any) -> ShardedWriter | None:
    """The writer of this run's checkpoints when they are sharded, None for the full format."""
    if choose_format(config, info.world_size, count_parameters(model)) != "sharded":
        return None
    return ShardedWriter(run_dir, info, keep_last, config.async_save)


def count_parameters(model: Any) -> int:
    """Parameters of the whole model (a sharded parameter counts its global size)."""
    return sum(p.numel() for p in unwrap(model).parameters())


def _app_state(model: Any, optimizer: Any, reference: Any = None) -> dict[str, Any]:
    """Model and optimizer state keyed by parameter name, each rank holding only its shards."""
    state = {"model": get_model_state_dict(unwrap(model)), "optimizer": get_optimizer_state_dict(unwrap(model), optimizer)}
    if reference is not None:
        state["reference"] = get_model_state_dict(unwrap(reference))
    return state


class ShardedWriter:
    """Writes sharded checkpoints of one run; at most one asynchronous write is in flight.

    Every rank must call ``save`` and ``finish`` at the same points (they are collective).
    """

    def __init__(self, run_dir: Path, info: DistInfo, keep_last: int, async_save: bool = False):
        self.root = Path(run_dir) / "checkpoints"
        self.info = info
        self.keep_last = keep_last
        self.async_save = async_save
        self.pending: tuple[Future, Path, int] | None = None
        # The background write's collectives (DCP gathers the shards' plans and results)
        # need a group of their own: gloo forbids two threads on one group.
        self.group = dist.new_group(backend="gloo") if async_save and info.enabled else None

    def save(self, step: int, model: Any, optimizer: Any, tokenizer: Any, trainer_state: dict[str, Any], reference: Any = None) -> None:
        """Write checkpoint ``step``: the shards from every rank, ``trainer_state`` (rank 0's)."""
        self.finish()  # the previous write is published before the next begins
        tmp = self.root / f"step_{step:06d}.tmp"
        if self.info.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            _write_rank0_files(tmp, model, tokenizer, trainer_state)
        barrier(self.info)
        state = _app_state(model, optimizer, reference)
        if self.async_save:
            future = dcp.async_save(state, checkpoint_id=tmp / SHARDED_DIR, process_group=self.group, no_dist=not self.info.enabled)
            self.pending = (future, tmp, step)
            return
        with _one_process_quiet():
            _guard_disk(tmp, lambda: dcp.save(state, checkpoint_id=tmp / SHARDED_DIR, no_dist=not self.info.enabled))
        self._publish(tmp, step)

    def finish(self) -> None:
        """Wait for an asynchronous write and publish it (collective; nothing to do without one)."""
        if self.pending is None:
            return
        future, tmp, step = self.pending
        self.pending = None
        _guard_disk(tmp, future.result)
        self._publish(tmp, step)

    def _publish(self, tmp: Path, step: int) -> None:
        barrier(self.info)  # every rank's shards are on disk
        if self.info.is_main:
            write_manifest(tmp)
            follow_umask(tmp)
            fsync_tree(tmp)
            publish_checkpoint(tmp, step, self.keep_last)
        barrier(self.info)


def _write_rank0_files(tmp: Path, model: Any, tokenizer: Any, trainer_state: dict[str, Any]) -> None:
    """What export and a reader of the run need besides the shards: the config, tokenizer, trainer state."""
    inner = unwrap(model)
    inner.config.save_pretrained(tmp)
    if getattr(inner, "generation_config", None) is not None:
        inner.generation_config.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    with open(tmp / "trainer_state.pt", "wb") as handle:
        torch.save(trainer_state, handle)


@contextmanager
def _one_process_quiet() -> Iterator[None]:
    """DCP warns that it assumes one process whenever no process group runs: a single-process run is one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _guard_disk(tmp: Path, write: Any) -> Any:
    """Run ``write``; a full disk removes the partial directory and names the checkpoint folder."""
    try:
        return write()
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_no_space(exc):
            raise NoSpaceError(tmp.parent) from exc
        raise


def load_sharded(checkpoint: Path, model: Any, optimizer: Any, reference: Any = None) -> None:
    """Load a sharded checkpoint's weights and optimizer state into ``model`` (sharded or not) and
    ``optimizer``; each rank reads the pieces of its own shards. Nothing for a full checkpoint.

    Collective under several ranks; call it after ``wrap_model``.
    """
    if not is_sharded_checkpoint(checkpoint):
        return
    state = _app_state(model, optimizer, reference)
    if reference is not None and not _has_key(checkpoint, "reference"):
        del state["reference"]  # saved before the first reference reset: the initial weights stand
    with _one_process_quiet():
        dcp.load(state, checkpoint_id=Path(checkpoint) / SHARDED_DIR, no_dist=not dist.is_initialized())
    set_model_state_dict(unwrap(model), state["model"])
    set_optimizer_state_dict(unwrap(model), optimizer, state["optimizer"])
    if "reference" in state:
        set_model_state_dict(unwrap(reference), state["reference"])


def continue_sharded_optimizer(checkpoint: Path, model: Any, optimizer: Any) -> None:
    """Start from a sharded checkpoint's AdamW moments (``model.optimizer_state``, e.g. the SFT
    cold start's) with this run's hyper-parameters; nothing for a full checkpoint, which
    ``training.optim.continue_optimizer`` reads before the sharding.

    Each rank reads the pieces of its own shards, whatever world size wrote them (DCP
    reshards). Only the per-parameter state (moments, step counts) is read: learning rate,
    schedule, betas, eps and weight decay stay this run's. Collective under several ranks;
    call it after ``wrap_model``.
    """
    if not is_sharded_checkpoint(checkpoint):
        return
    # This run's layout (its shards, its parameter names) and its own param_groups.
    own = get_optimizer_state_dict(unwrap(model), optimizer)
    moments = {"optimizer": {"state": own["state"]}}
    _check_moments(checkpoint, moments)
    try:
        with _one_process_quiet():
            dcp.load(moments, checkpoint_id=Path(checkpoint) / SHARDED_DIR, no_dist=not dist.is_initialized())
    except CheckpointException as exc:  # a shape that differs: DCP's message names the tensor
        raise ConfigError(f"model.optimizer_state: the optimizer state in {checkpoint} does not fit this model: {_last_line(exc)}") from exc
    set_optimizer_state_dict(unwrap(model), optimizer, {"state": moments["optimizer"]["state"], "param_groups": own["param_groups"]})


def _check_moments(checkpoint: Path, moments: dict[str, Any]) -> None:
    """Every parameter's moments are in the checkpoint, or a ConfigError names what is not."""
    saved = dcp.FileSystemReader(str(Path(checkpoint) / SHARDED_DIR)).read_metadata().state_dict_metadata
    if not any(key.startswith("optimizer.state.") for key in saved):
        raise ConfigError(f"model.optimizer_state: {checkpoint} holds no optimizer state (its shards have no AdamW moments)")
    missing = [
        f"{name}.{field}"
        for name, fields in moments["optimizer"]["state"].items()
        for field in fields
        if f"optimizer.state.{name}.{field}" not in saved
    ]
    if missing:
        raise ConfigError(
            f"model.optimizer_state: the optimizer state in {checkpoint} does not fit this model (another architecture, "
            f"or LoRA on one side only): {len(missing)} of this model's moments are not in it, e.g. {missing[0]}"
        )


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _has_key(checkpoint: Path, prefix: str) -> bool:
    metadata = dcp.FileSystemReader(str(Path(checkpoint) / SHARDED_DIR)).read_metadata()
    return any(key.split(".", 1)[0] == prefix for key in metadata.state_dict_metadata)


def sharded_to_full(checkpoint: Path, dtype: str | None = None) -> torch.nn.Module:
    """The checkpoint's model on the CPU, unsharded (for export): the architecture from its
    ``config.json``, its storage allocated once and the shards read straight into it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(checkpoint)
    torch_dtype = dtype or getattr(config, "dtype", None) or "float32"
    torch_dtype = getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype
    # On the CPU, not on meta: the buffers that no checkpoint holds (the rotary frequencies)
    # are computed at construction.
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    state = {"model": model.state_dict()}  # views of the model's storage: DCP loads in place
    with _one_process_quiet():
        dcp.load(state, checkpoint_id=Path(checkpoint) / SHARDED_DIR, no_dist=True)
    return model
