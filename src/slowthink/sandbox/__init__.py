"""Running model-written Python safely (docs/design.md, "The sandbox"; paper section 4.4).

Must not import torch, transformers, modeling, rollout, training, recipes or the CLI (tests/test_layers.py).

``ProcessSandbox(SandboxConfig(...)).run(code)`` returns a ``CellResult`` whatever the
code does. See docs/sandbox.md for the isolation layers and what the fallback gives up.
"""

from slowthink.sandbox.base import CELL_STATUSES, CellResult, CellStatus, Sandbox
from slowthink.sandbox.config import SandboxConfig

__all__ = ["CELL_STATUSES", "CellResult", "CellStatus", "ProcessSandbox", "Sandbox", "SandboxConfig", "SandboxUnavailable"]


def __getattr__(name: str):
    # The host side is imported on first use, so the worker (which imports this
    # package) does not load subprocess machinery it never uses.
    if name == "ProcessSandbox":
        from slowthink.sandbox.host import ProcessSandbox

        return ProcessSandbox
    if name == "SandboxUnavailable":
        from slowthink.sandbox.launch import SandboxUnavailable

        return SandboxUnavailable
    raise AttributeError(name)
