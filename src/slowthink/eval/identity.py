"""Which model an eval's samples came from, recorded in ``run.json`` and checked on resume.

A model path names a place, not weights: writing a new checkpoint at the same path (running
``slowthink demo`` again, say) made a resumed eval keep the old model's samples and report
its accuracy. The identity is therefore what the path holds:

- a **local directory** (weights, config, tokenizer files): a fingerprint of every file's
  relative name, size and contents. Files up to ``FULL_HASH_BYTES`` are hashed whole; a
  larger file (a weight shard) by its size and ``SAMPLED_CHUNKS`` chunks spread evenly
  through it, which differ between any two trained checkpoints, at a cost of a few MB read
  however large the model. A copy of the same folder has the same identity.
- ``tiny`` (embedded, built from code) and a **hub name** (the Hub resolves it): the name.
- an **OpenAI-compatible server**: the served model's card from ``/v1/models`` (every field
  but ``created``, which vLLM and ``slowthink serve`` fill with the time of the request),
  plus the files fingerprint when the card names a local directory (``id`` or ``root``).
  Two checkpoints served under the same name from folders the client cannot see look the
  same: serve them under different names (``--served-model-name``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

# Files up to this size are hashed whole.
FULL_HASH_BYTES = 32 * 1024 * 1024
# A larger file: its size and this many chunks of CHUNK_BYTES at evenly spaced offsets.
SAMPLED_CHUNKS = 16
CHUNK_BYTES = 64 * 1024
# Card fields that change with every request, not with the model.
VOLATILE_CARD_FIELDS = ("created",)


def _file_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            step = (size - CHUNK_BYTES) // (SAMPLED_CHUNKS - 1)
            for index in range(SAMPLED_CHUNKS):
                handle.seek(index * step)
                digest.update(handle.read(CHUNK_BYTES))
    return digest.hexdigest()


def files_fingerprint(folder: str | Path) -> str:
    """16 hex digits over every file under ``folder``: relative name, size and contents."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        # Hidden files (locks, editor backups) and caches are not the model.
        if any(part.startswith(".") or part == "__pycache__" for part in Path(relative).parts):
            continue
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0{_file_digest(path, size)}\n".encode())
    return digest.hexdigest()[:16]


def local_identity(name: str) -> dict[str, Any]:
    """The identity of a model or tokenizer given by ``name`` (a folder, 'tiny' or a hub name)."""
    if Path(name).is_dir():
        return {"path": str(Path(name).resolve()), "files": files_fingerprint(name)}
    return {"name": name}


def model_identity(model: str, tokenizer: str | None = None) -> dict[str, Any]:
    """Weights and tokenizer of the hf / vllm backends."""
    identity = {"model": local_identity(model)}
    if tokenizer and tokenizer != model:
        identity["tokenizer"] = local_identity(tokenizer)
    return identity


def served_identity(card: dict[str, Any], tokenizer: str | None) -> dict[str, Any]:
    """The identity of a served model from its ``/v1/models`` card (and the prompt tokenizer)."""
    stable = {key: value for key, value in sorted(card.items()) if key not in VOLATILE_CARD_FIELDS}
    identity: dict[str, Any] = {"served": stable}
    for field in ("root", "id"):
        where = card.get(field)
        if isinstance(where, str) and where and Path(where).is_dir():
            identity["files"] = files_fingerprint(where)
            break
    if tokenizer:
        identity["tokenizer"] = local_identity(tokenizer)
    return identity


def pick_card(listing: dict[str, Any], served_model_name: str | None, where: str) -> dict[str, Any]:
    """The card of ``served_model_name`` (None: the first listed) in a ``/v1/models`` reply."""
    cards = [card for card in listing.get("data") or [] if isinstance(card, dict)]
    if not cards:
        raise ValueError(f"{where} lists no model")
    if served_model_name is None:
        return cards[0]
    for card in cards:
        if card.get("id") == served_model_name:
            return card
    raise LookupError(f"{where} does not serve {served_model_name!r}; it lists {', '.join(str(c.get('id')) for c in cards)}")
