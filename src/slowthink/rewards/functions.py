"""Reward functions of the user's own, named in the config and loaded by path in every process.

``reward.functions: {NAME: SPEC}`` with ``reward.weights.NAME`` beside the built-in
components. A SPEC is

- ``path/to/file.py:function`` (a relative path is taken from the directory the config is
  loaded in and stored absolute, so torchrun ranks and study cells find the same file),
- ``package.module:function`` (importable where the run starts), or
- ``http://HOST:PORT/PATH`` / ``https://...``: a remote reward (``rewards/remote.py``).

Only the spec string travels (in the config every process loads), never a live object:
each process imports the function itself. The call is TRL's, so a TRL reward function
works unchanged::

    fn(prompts=[...], completions=[...], answer=[...], id=[...], COLUMN=[...]) -> list[float | None]

``prompts`` are the problems' texts (before the prompt template), ``completions`` the
responses, and every other column of the rows comes as a keyword list. A function without
``**kwargs`` gets only the columns it names. ``None`` means "not applicable to this row": it
adds nothing to the row's total and is left out of the logged mean ``reward/NAME``.

A function that raises, returns the wrong length, a non-number, NaN or infinity, or runs
past ``reward.function_timeout_s`` fails the step with a ``RewardFunctionError`` naming the
function and the row; it never becomes a silent 0.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slowthink.config import ConfigError
from slowthink.rewards.remote import RemoteReward, RemoteRewardError


class RewardFunctionError(ConfigError):
    """A user's reward function failed on a batch; the message names it and the row."""


@dataclass(frozen=True)
class RewardRow:
    """What a reward function sees of one row besides the completion: the problem text and
    the row's columns (``answer``, ``id`` and every extra column of the data)."""

    id: str
    prompt: str
    columns: dict[str, Any] = field(default_factory=dict)


def is_remote(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def normalize_spec(spec: str) -> str:
    """A file spec with its path made absolute (when the file is there); others unchanged."""
    if is_remote(spec):
        return spec
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ValueError(f"'{spec}' is not 'path/to/file.py:function', 'package.module:function' or an http(s) URL")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if path.is_file():
            return f"{path.resolve()}:{name}"
    return spec


def load_callable(spec: str) -> Callable[..., Any]:
    """Import the function a ``file.py:function`` or ``module:function`` spec names."""
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"reward function {spec}: no file {path} (relative to {Path.cwd()})")
        # A module name of its own per file, so two files with one stem do not collide.
        module_name = f"slowthink_reward_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"reward function {spec}: cannot import {target} ({exc})") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"reward function {spec}: {target} has no function '{name}'")
    return fn


class RewardFunction:
    """One named reward function: called on a batch, its values checked row by row."""

    def __init__(self, name: str, spec: str, fn: Callable[..., Any], timeout_s: float, threaded: bool = True):
        self.name, self.spec, self.fn, self.timeout_s, self.threaded = name, spec, fn, timeout_s, threaded
        self.keywords = _accepted_keywords(fn)

    def __call__(self, rows: Sequence[RewardRow], completions: Sequence[str]) -> list[float | None]:
        kwargs = batch_kwargs(rows, completions, self.keywords)
        try:
            values = self._call(kwargs)
        except (RewardFunctionError, RemoteRewardError) as exc:
            if str(exc).startswith("reward function"):
                raise
            raise RewardFunctionError(f"{self._label()}: {exc}") from exc
        except Exception as exc:
            raise RewardFunctionError(f"{self._label()} raised {type(exc).__name__}: {exc} {self._culprit(rows, completions)}") from exc
        return self._checked(values, rows)

    def _label(self) -> str:
        return f"reward function '{self.name}' ({self.spec})"

    def _call(self, kwargs: dict[str, Any]) -> Any:
        if not self.threaded:
            return self.fn(**kwargs)
        # A daemon thread: a function stuck past its deadline cannot be killed, but it must
        # not keep the process alive after the step has failed.
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = self.fn(**kwargs)
            except BaseException as exc:  # handed to the caller's thread, raised there
                box["error"] = exc

        thread = threading.Thread(target=target, daemon=True, name=f"slowthink-reward-{self.name}")
        thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            raise RewardFunctionError(
                f"{self._label()} took longer than reward.function_timeout_s={self.timeout_s:g}s on a batch of {len(kwargs['completions'])} rows"
            )
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _culprit(self, rows: Sequence[RewardRow], completions: Sequence[str]) -> str:
        """Which row makes it raise, found by calling it on each row alone (only on failure)."""
        for i, (row, completion) in enumerate(zip(rows, completions)):
            try:
                self._call(batch_kwargs([row], [completion], self.keywords))
            except Exception:
                return f"(on row {i} of the batch, problem '{row.id}')"
        return f"(on a batch of {len(rows)} rows; each row alone passes)"

    def _checked(self, values: Any, rows: Sequence[RewardRow]) -> list[float | None]:
        if hasattr(values, "tolist"):  # a numpy array or a tensor
            values = values.tolist()
        if not isinstance(values, (list, tuple)):
            raise RewardFunctionError(f"{self._label()} returned {type(values).__name__}, not a list of floats (one per completion)")
        if len(values) != len(rows):
            raise RewardFunctionError(
                f"{self._label()} returned {len(values)} values for {len(rows)} completions (one per completion, None if not applicable)"
            )
        out: list[float | None] = []
        for i, value in enumerate(values):
            if value is None:
                out.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RewardFunctionError(f"{self._label()} returned {value!r} for row {i} (problem '{rows[i].id}'): not a number")
            if not math.isfinite(value):
                raise RewardFunctionError(f"{self._label()} returned {value} for row {i} (problem '{rows[i].id}'): a reward must be finite")
            out.append(float(value))
        return out


def _accepted_keywords(fn: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments ``fn`` takes; None when it takes ``**kwargs`` (everything)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def batch_kwargs(rows: Sequence[RewardRow], completions: Sequence[str], keywords: set[str] | None = None) -> dict[str, Any]:
    """TRL's call: ``prompts``, ``completions`` and each column as a list (None where a row lacks it)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row.columns))
    kwargs: dict[str, Any] = {"prompts": [row.prompt for row in rows], "completions": list(completions)}
    for name in names:
        if name not in kwargs:
            kwargs[name] = [row.columns.get(name) for row in rows]
    if keywords is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in keywords or k == "completions"}
    return kwargs


def load_reward_functions(specs: dict[str, str], timeout_s: float, retries: int) -> dict[str, RewardFunction]:
    """Every ``reward.functions`` entry, loaded in this process."""
    functions = {}
    for name, spec in specs.items():
        if is_remote(spec):
            functions[name] = RewardFunction(name, spec, RemoteReward(spec, timeout_s, retries), timeout_s, threaded=False)
        else:
            functions[name] = RewardFunction(name, spec, load_callable(spec), timeout_s)
    return functions
