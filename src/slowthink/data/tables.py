"""Rows of a data file, a saved dataset folder or a Hub dataset, read through Hugging Face ``datasets``.

One spec names the data everywhere (``data.train_file``, ``data.eval_file``, eval's
``--data``, SFT's ``data.train_file``, curate's sources):

- ``FILE.jsonl``: the project's own JSONL reader (``data.jsonl``: errors name ``file:line``);
- ``FILE.parquet`` / ``.arrow`` / ``.csv`` / ``.json`` (a JSON array, or JSON Lines): read by
  ``datasets`` into Arrow, which is memory-mapped, so a million-row pool is not held in
  memory; a file whose first bytes say parquet or Arrow is read as such whatever its
  name, never as text;
- a folder written by ``Dataset.save_to_disk`` (``DIR`` or ``DIR@SPLIT`` for a
  ``DatasetDict``), or a folder of data files;
- a Hub id ``OWNER/NAME``, with an optional config and split: ``OWNER/NAME:CONFIG@SPLIT``
  (split ``train`` by default). Offline (``HF_HUB_OFFLINE=1``) it is read from the local
  cache; a dataset not there is a ``DataError`` that says how to get it.

A ``Table`` gives rows as dicts and says where row ``i`` is (``file:line`` for JSONL,
``file row i`` otherwise), so every error can name the file, the row and the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowthink.data.jsonl import read_jsonl
from slowthink.data.problems import DataError

# File suffix -> the ``datasets`` builder that reads it (.jsonl has its own reader).
BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".arrow": "arrow"}
# Magic bytes: a parquet or Arrow file is recognised by its content, never read as text.
# (Arrow's IPC file format starts "ARROW1", its stream format, which datasets writes, with 0xFFFFFFFF.)
_MAGIC = {b"PAR1": "parquet", b"ARROW1": "arrow", b"\xff\xff\xff\xff": "arrow"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?(@[\w.\[\]:%+-]+)?$")
HUB_FIX = (
    "to use it offline, load it once where the Hub is reachable (it is then read from the cache, also with HF_HUB_OFFLINE=1), "
    "or save it with Dataset.save_to_disk(DIR) and pass DIR, or pass a local .jsonl/.parquet/.arrow/.csv/.json file"
)


@dataclass
class Table:
    """Rows of one source: JSONL rows in memory (with their line numbers), or a memory-mapped
    ``datasets.Dataset``. ``columns`` is None for JSONL, whose rows may differ."""

    name: str
    jsonl_rows: list[tuple[int, Any]] | None = None
    dataset: Any = None

    def __len__(self) -> int:
        return len(self.jsonl_rows) if self.jsonl_rows is not None else len(self.dataset)

    @property
    def columns(self) -> list[str] | None:
        return None if self.dataset is None else list(self.dataset.column_names)

    def where(self, index: int) -> str:
        """Where row ``index`` (from 0) is, for messages: ``file:line`` or ``name row N`` (from 1)."""
        if self.jsonl_rows is not None:
            return f"{self.name}:{self.jsonl_rows[index][0]}"
        return f"{self.name} row {index + 1}"

    def row(self, index: int) -> Any:
        if self.jsonl_rows is not None:
            return self.jsonl_rows[index][1]
        return self.dataset[index]

    def __iter__(self) -> Iterator[Any]:
        if self.jsonl_rows is not None:
            yield from (value for _, value in self.jsonl_rows)
        else:
            # Batched reads from the memory-mapped Arrow data: no copy of the whole table.
            for batch in self.dataset.iter(batch_size=1024):
                keys = list(batch)
                yield from (dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys)))


def open_table(spec: str | Path) -> Table:
    """The ``Table`` a spec names (see the module docstring); ``DataError`` if it cannot be read."""
    spec = str(spec)
    path = Path(spec)
    if path.is_file():
        kind = _file_kind(path)
        return Table(spec, jsonl_rows=_jsonl_rows(path)) if kind == "jsonl" else Table(spec, dataset=_load_file(path, kind))
    base, _, split = spec.partition("@")
    if Path(base).is_dir():
        return Table(spec, dataset=_load_folder(Path(base), split or None))
    if is_hub_id(spec):
        return Table(spec, dataset=_load_hub(spec))
    raise DataError(
        f"data file not found: {spec} (a .jsonl/.json/.parquet/.arrow/.csv file, a dataset folder, or a Hub id OWNER/NAME[:CONFIG][@SPLIT])"
    )


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` reads as ``OWNER/NAME[:CONFIG][@SPLIT]`` rather than a data file's name."""
    return bool(_HUB_ID.match(spec)) and Path(spec).suffix.lower() not in (*BUILDERS, ".jsonl")


def _head(path: Path, size: int = 6) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


def _file_kind(path: Path) -> str:
    head = _head(path, 8)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        raise DataError(f"{path}: not a {suffix[1:]} file (its first bytes are {head[:4]!r}); was it written completely?")
    if suffix == ".csv":
        return "csv"
    # A .json file holding one array (or object) goes to datasets; JSON Lines, and any other
    # suffix, to the line reader with its file:line errors.
    if suffix == ".json" and head.lstrip()[:1] == b"[":
        return "json"
    return "jsonl"


def _jsonl_rows(path: Path) -> list[tuple[int, Any]]:
    rows = []
    for row in read_jsonl(path):
        if row.error is not None:
            raise DataError(f"{path}:{row.line}: {row.error}")
        rows.append((row.line, row.value))
    return rows


def _datasets() -> Any:
    import datasets

    datasets.disable_progress_bars()  # one line per run, not a bar per file
    return datasets


def _load_errors(datasets: Any) -> tuple[type[BaseException], ...]:
    import pyarrow

    return (OSError, ValueError, datasets.exceptions.DatasetsError, pyarrow.lib.ArrowException)


def _load_file(path: Path, kind: str) -> Any:
    datasets = _datasets()
    try:
        if kind == "arrow" and _head(path) != b"ARROW1":
            return datasets.Dataset.from_file(str(path))  # an Arrow stream, memory-mapped in place: no copy
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    except _load_errors(datasets) as exc:
        raise DataError(f"{path}: cannot be read as {kind} ({_reason(exc)})") from None


def _load_folder(folder: Path, split: str | None) -> Any:
    datasets = _datasets()
    saved = (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()
    try:
        loaded = datasets.load_from_disk(str(folder)) if saved else datasets.load_dataset(str(folder))
    except _load_errors(datasets) as exc:
        raise DataError(f"{folder}: cannot be read as a dataset folder ({_reason(exc)})") from None
    return _pick_split(loaded, split, str(folder))


def _load_hub(spec: str) -> Any:
    datasets = _datasets()
    rest, _, split = spec.partition("@")
    name, _, config = rest.partition(":")
    try:
        return datasets.load_dataset(name, config or None, split=split or "train")
    except _load_errors(datasets) as exc:
        raise DataError(f"cannot load Hub dataset {spec} ({_reason(exc)}); {HUB_FIX}") from None


def _pick_split(loaded: Any, split: str | None, where: str) -> Any:
    if not hasattr(loaded, "keys"):  # a single Dataset
        if split:
            raise DataError(f"{where}: a single dataset has no split '{split}'; drop '@{split}'")
        return loaded
    splits = list(loaded.keys())
    chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
    if chosen not in splits:
        raise DataError(f"{where}: choose a split with {where}@SPLIT; splits: {', '.join(splits)}")
    return loaded[chosen]


def _reason(exc: BaseException) -> str:
    """The most specific message of a ``datasets`` error (it wraps the reader's in ``__cause__``)."""
    while exc.__cause__ is not None and not str(exc).strip():
        exc = exc.__cause__
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text}: {str(cause).strip()}"
    return text.splitlines()[0][:300]
