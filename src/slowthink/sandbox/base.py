"""What a sandbox is: the ``Sandbox`` protocol and the ``CellResult`` every call returns.

The tool loop (``slowthink.rollout.tool_loop``) only sees this protocol, so a remote
executor or a test double can stand in for the bubblewrap implementation in ``host.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, get_args, runtime_checkable

# One status per call (docs/design.md, "The sandbox"):
#   ok            the cell ran to the end (``sys.exit(0)`` included)
#   error         it raised (``error`` holds the last traceback line), or exited non-zero
#   timeout       it passed the wall deadline or its CPU-time limit
#   memory        it ran out of its address-space limit (MemoryError) or was OOM-killed
#   output_limit  it wrote more than ``max_output_bytes`` to stdout + stderr
#   crashed       it died on a signal (stack overflow, abort) or the worker itself died
CellStatus = Literal["ok", "error", "timeout", "memory", "output_limit", "crashed"]
CELL_STATUSES: tuple[str, ...] = get_args(CellStatus)


@dataclass(frozen=True)
class CellResult:
    """The outcome of one cell.

    ``stdout``/``stderr`` are already truncated to ``max_output_chars`` (head and tail
    kept, ``truncated`` says so). When the cell printed nothing, ``stdout`` holds the
    repr of its last expression, as a notebook would show it.
    """

    status: CellStatus
    stdout: str
    stderr: str
    wall_s: float
    # The last line of the traceback ("ZeroDivisionError: division by zero") when
    # status is "error"; the paper's release shows only this line to the model.
    error: str | None = None
    truncated: bool = False
    # "bwrap" or "fallback": which isolation the cell ran under.
    backend: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Sandbox(Protocol):
    """Runs untrusted Python cells; never raises for anything a cell does."""

    def run(self, code: str, session: str | None = None) -> CellResult:
        """Run ``code``. With ``session`` set and a stateful sandbox, the cell sees the
        globals that earlier cells of the same session left; otherwise it starts empty."""
        ...

    def close_session(self, session: str) -> None:
        """Forget a session's state (no-op for stateless sandboxes)."""
        ...

    def close(self) -> None:
        """Stop the worker and every cell (a later ``run`` would start a new worker)."""
        ...
