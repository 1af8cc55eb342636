"""Checkpoints that survive a kill: HF-format weights plus trainer state, written atomically.

Layout of a run directory::

    run/checkpoints/step_000010/{model.safetensors, config.json, tokenizer files, trainer_state.pt}
    run/checkpoints/latest          # text file naming the newest complete checkpoint

A checkpoint is written to ``step_NNNNNN.tmp``: weights, tokenizer, trainer state, and last a
``manifest.json`` with every file's size and SHA-256. The files and the directory are fsynced,
the directory is renamed to ``step_NNNNNN``, and ``latest`` is replaced atomically, so a SIGKILL
or a power cut at any point leaves the previous checkpoint usable.

Resuming verifies the checkpoint against its manifest first: a truncated or corrupted
``model.safetensors`` or ``trainer_state.pt`` falls back to the previous good checkpoint with
a warning naming the bad file (a missing ``trainer_state.pt`` too); with no good one left the
error names it. Checkpoints written before manifests existed are checked by loading them. A
``latest`` that cannot be read (not UTF-8, not a checkpoint's name) is reported and the newest
good checkpoint is used. A full disk during a write removes the partial ``.tmp`` directory and
says "no space left on <path>" (``NoSpaceError``, exit 1).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slowthink.durable import CheckpointError, NoSpaceError, atomic_write_text, follow_umask, fsync_dir, fsync_tree, is_no_space  # noqa: F401  (CheckpointError re-exported)
from slowthink.training.lora import holds_adapter, is_lora, load_adapter

MANIFEST = "manifest.json"
SHARDED_DIR = "sharded"  # the DCP shards of a sharded checkpoint


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 23):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """Size and SHA-256 of every file in a checkpoint directory, written last."""
    files = sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != MANIFEST)
    entries = {str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    (Path(directory) / MANIFEST).write_text(json.dumps({"format": 1, "files": entries}, indent=1))


def _write_checkpoint_dir(tmp: Path, model: Any, tokenizer: Any, trainer_state: dict[str, Any], state_dict: dict[str, Any] | None = None) -> None:
    # state_dict: the full weights when the model itself holds only shards (FSDP, training/fsdp.py).
    # A LoRA policy saves its adapter; no embedding is ever adapted (training/lora.py), and
    # peft's "auto" would ask the Hub at every checkpoint whether a hub base's vocab changed.
    extra = {"save_embedding_layers": False} if is_lora(model) else {}
    model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict, **extra)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    # Through a Python file: a full disk then surfaces as an OSError (ENOSPC) in the chain of
    # torch's "unexpected pos" RuntimeError, which a path argument would not give.
    with open(tmp / "trainer_state.pt", "wb") as handle:
        torch.save(trainer_state, handle)
    write_manifest(tmp)
    follow_umask(tmp)  # safetensors leaves model.safetensors 0600, unlike every other file
    # Data and directory entries on disk before the rename makes the checkpoint visible.
    fsync_tree(tmp)


def save_checkpoint(
    run_dir: Path, step: int, model: Any, tokenizer: Any, trainer_state: dict[str, Any], keep_last: int = 2, state_dict: dict[str, Any] | None = None
) -> Path:
    """Write weights (safetensors) + tokenizer + ``trainer_state.pt`` + manifest for ``step``; keep the newest few."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f"step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_checkpoint_dir(tmp, model, tokenizer, trainer_state, state_dict)
    except BaseException as exc:
        # A full disk, a Ctrl-C or any failure: no partial directory is left behind.
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_no_space(exc):
            raise NoSpaceError(root) from exc
        raise
    publish_checkpoint(tmp, step, keep_last)
    return final


def publish_checkpoint(tmp: Path, step: int, keep_last: int) -> Path:
    """Make a complete ``step_NNNNNN.tmp`` the checkpoint ``step_NNNNNN``: rename, point ``latest`` at it, prune.

    Until the rename the previous checkpoint is the one a resume finds; the rename and the
    pointer are each atomic, so a kill between any two lines leaves a usable checkpoint.
    """
    root = tmp.parent
    final = root / f"step_{step:06d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    fsync_dir(root)
    atomic_write_text(root / "latest", final.name)  # NoSpaceError naming root on a full disk
    # Keep this checkpoint and the newest keep_last - 1 before it. Checkpoints of later steps
    # belong to an abandoned run in the same directory (a fresh start over an old run): they
    # go too, or pruning by step would delete the one just written and leave `latest` dangling.
    earlier = [p for p in _checkpoint_dirs(root) if _step_of(p) < step]
    later = [p for p in _checkpoint_dirs(root) if _step_of(p) > step]
    for old in earlier[: max(len(earlier) - max(keep_last - 1, 0), 0)] + later:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_of(path: Path) -> int:
    return int(path.name.removeprefix("step_"))


def _checkpoint_dirs(root: Path) -> list[Path]:
    """Renamed (finished) checkpoint directories, oldest step first; ``.tmp`` ones are partial."""
    dirs = [p for p in root.glob("step_*") if p.is_dir() and p.name.removeprefix("step_").isdigit()]
    return sorted(dirs, key=_step_of)


def _pointed(root: Path, warn: bool) -> Path | None:
    """The checkpoint directory ``latest`` names, or None when it is absent or unreadable.

    ``latest`` is one line, a directory name such as ``step_000010``; anything else (bytes that
    are not UTF-8, a path, an empty file) is reported when ``warn`` and then ignored.
    """
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot be read ({exc})"
    else:
        if name.startswith("step_") and name.removeprefix("step_").isdigit():
            return root / name
        problem = f"does not name a checkpoint ({name[:40]!r})"
    if warn:
        print(f"warning: {pointer} {problem}; using the newest complete checkpoint instead", file=sys.stderr, flush=True)
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None.

    ``latest`` names it; if the pointer is missing, unreadable or names a directory that is
    gone, the newest complete ``step_NNNNNN`` directory is used instead (a leftover ``.tmp`` never is).
    """
    root = Path(run_dir) / "checkpoints"
    path = _pointed(root, warn=False)
    if path is not None and (path / "trainer_state.pt").is_file():
        return path
    complete = [p for p in _checkpoint_dirs(root) if (p / "trainer_state.pt").is_file()]
    return complete[-1] if complete else None


def verify_checkpoint(checkpoint: Path) -> None:
    """Raise ``CheckpointError`` naming the first file that does not match the manifest.

    A checkpoint without a manifest (written by an older version) is checked by loading its
    weights and trainer state instead.
    """
    checkpoint = Path(checkpoint)
    manifest_path = checkpoint / MANIFEST
    if not manifest_path.is_file():
        _try_load(checkpoint)
        return
    try:
        entries = json.loads(manifest_path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest_path} is unreadable ({exc})") from exc
    for name, expected in entries.items():
        path = checkpoint / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(f"{path} has {size} bytes, the manifest says {expected['size']} (truncated or overwritten)")
        if _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{path} does not match its SHA-256 in the manifest (corrupted)")


def _try_load(checkpoint: Path) -> None:
    """A manifest-less checkpoint is good if its safetensors and trainer state load."""
    from safetensors.torch import load_file

    for file in sorted(checkpoint.glob("*.safetensors")):
        try:
            load_file(file)
        except Exception as exc:
            raise CheckpointError(f"{file} cannot be read ({type(exc).__name__}: {exc})") from exc
    load_trainer_state(checkpoint)


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint that passes verification, or None when the run has none.

    ``latest`` is tried first, then the other checkpoints newest first; each damaged one (a
    file that does not match the manifest, a deleted ``trainer_state.pt``) is reported on
    stderr by name. Raises ``CheckpointError`` when checkpoints exist but none is usable.
    """
    root = Path(run_dir) / "checkpoints"
    candidates = list(reversed(_checkpoint_dirs(root)))
    pointed = _pointed(root, warn=True)
    if pointed is not None and pointed in candidates:
        candidates.remove(pointed)
        candidates.insert(0, pointed)
    problems = []
    for candidate in candidates:
        try:
            verify_checkpoint(candidate)
        except CheckpointError as exc:
            problems.append(str(exc))
            print(f"warning: checkpoint {candidate} is damaged: {exc}; trying an earlier one", file=sys.stderr, flush=True)
            continue
        if problems:
            print(f"warning: resuming from {candidate.name} instead (the newer checkpoint is damaged)", file=sys.stderr, flush=True)
        return candidate
    if problems:
        raise CheckpointError(
            f"no usable checkpoint in {root}: " + "; ".join(problems) + ". Start again with run.overwrite=true, or restore the files"
        )
    return None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = Path(checkpoint) / "trainer_state.pt"
    try:
        # On the CPU whatever device saved it (under DDP every rank would otherwise load the
        # moments onto cuda:0), memory-mapped: the ranks of a node share the file's pages.
        return torch.load(path, weights_only=False, map_location="cpu", mmap=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} is missing") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc


def load_weights(model: Any, checkpoint: Path) -> None:
    """Load safetensors weights saved by ``save_checkpoint`` into ``model`` (same architecture);
    a LoRA policy loads the checkpoint's adapter (training/lora.py)."""
    from safetensors.torch import load_file

    if is_lora(model):
        load_adapter(model, checkpoint)
        return
    if holds_adapter(checkpoint):
        raise CheckpointError(f"{checkpoint} holds a LoRA adapter, not full weights: resume it with model.lora as its run had it")

    if all(p.is_meta for p in model.parameters()):
        return  # a rank that loaded the model empty under FSDP: shard_model fills it from rank 0's
    files = sorted(Path(checkpoint).glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(file))
        except Exception as exc:
            raise CheckpointError(f"{file} cannot be read ({type(exc).__name__}: {exc})") from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings are saved once; anything else missing is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {checkpoint} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def trainer_state(step: int, optimizer: Any, scheduler: Any, sampler: Any, **extra: Any) -> dict[str, Any]:
    """What every recipe's checkpoint holds besides the weights."""
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "sampler": sampler.state(),
        **extra,
    }


def is_sharded_checkpoint(checkpoint: Path) -> bool:
    """A checkpoint whose weights and optimizer state are DCP shards (training/sharded_checkpoint.py)."""
    return (Path(checkpoint) / SHARDED_DIR / ".metadata").is_file()  # DCP's index of every shard


def restore_training(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any, sampler: Any) -> dict[str, Any]:
    """Load weights, optimizer, schedule, RNG and data position; returns the saved state.

    A sharded checkpoint's weights and optimizer state wait for the sharded model: the recipe
    loads them after ``wrap_model`` (``sharded_checkpoint.load_sharded``).
    """
    sharded = is_sharded_checkpoint(checkpoint)
    if not sharded:
        load_weights(model, checkpoint)
    saved = load_trainer_state(checkpoint)
    if not sharded:
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    sampler.load_state(saved["sampler"])
    print(f"resumed from {checkpoint} at step {saved['step']}", flush=True)
    return saved
