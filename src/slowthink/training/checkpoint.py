"""Checkpoints that survive a kill: HF-format weights plus trainer state, written atomically.

Layout of a run directory::

    run/checkpoints/step_000010/{model.safetensors, config.json, tokenizer files, trainer_state.pt}
    run/checkpoints/latest          # text file naming the newest complete checkpoint

A checkpoint is written to ``step_N.tmp`` and renamed; ``latest`` is replaced atomically
after the rename, so a SIGKILL at any point leaves the previous checkpoint usable.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, model: Any, tokenizer: Any, trainer_state: dict[str, Any], keep_last: int = 2) -> Path:
    """Write weights (safetensors) + tokenizer + ``trainer_state.pt`` for ``step``; keep the newest few."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f"step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    torch.save(trainer_state, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(root / "latest", final.name)
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


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None.

    ``latest`` names it; if the pointer is missing or names a directory that is gone, the
    newest complete ``step_N`` directory is used instead (a leftover ``.tmp`` never is).
    """
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / "trainer_state.pt").is_file():
            return path
    complete = [p for p in _checkpoint_dirs(root) if (p / "trainer_state.pt").is_file()]
    return complete[-1] if complete else None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / "trainer_state.pt", weights_only=False)


def load_weights(model: Any, checkpoint: Path) -> None:
    """Load safetensors weights saved by ``save_checkpoint`` into ``model`` (same architecture)."""
    from safetensors.torch import load_file

    files = sorted(Path(checkpoint).glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings are saved once; anything else missing is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint {checkpoint} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def trainer_state(step: int, optimizer: Any, scheduler: Any, sampler: Any, **extra: Any) -> dict[str, Any]:
    """What every recipe's checkpoint holds besides the weights."""
    return {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng_state(), "sampler": sampler.state(), **extra}


def restore_training(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any, sampler: Any) -> dict[str, Any]:
    """Load weights, optimizer, schedule, RNG and data position; returns the saved state."""
    load_weights(model, checkpoint)
    saved = load_trainer_state(checkpoint)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    sampler.load_state(saved["sampler"])
    print(f"resumed from {checkpoint} at step {saved['step']}", flush=True)
    return saved
