"""``SandboxConfig``: every limit the sandbox enforces, in one frozen, typed place."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from slowthink.config import StrictConfig


class SandboxConfig(StrictConfig):
    """Limits and isolation for running model-written code (docs/design.md, "The sandbox")."""

    timeout_s: float = Field(5.0, gt=0, le=3600)
    """Wall-clock deadline per cell, enforced by the worker (the host adds a grace period
    on top and kills the whole worker if even that passes). The paper's release used 5 s."""
    cpu_s: int = Field(5, ge=1, le=3600)
    """CPU-seconds per cell (RLIMIT_CPU): catches busy threads the wall clock would let
    run on other cores."""
    memory_mb: int = Field(1024, ge=128)
    """Address-space limit per cell (RLIMIT_AS), in MiB. It counts the preloaded
    numpy/sympy mappings too (~160 MiB), so keep it well above that."""
    file_size_mb: int = Field(16, ge=0)
    """Largest file a cell may write (RLIMIT_FSIZE), in MiB."""
    tmp_size_mb: int = Field(64, ge=1)
    """Size of each private tmpfs inside bubblewrap, /tmp and /dev/shm, in MiB (host memory
    a cell can hold at most twice over). Both are emptied between stateless cells."""
    max_threads: int = Field(32, ge=1)
    """Threads a cell may run (RLIMIT_NPROC in the sandbox's own user namespace);
    processes are refused by seccomp regardless."""
    max_output_chars: int = Field(4000, ge=16)
    """stdout and stderr are each cut to this many characters (half head, half tail)."""
    max_output_bytes: int = Field(1_000_000, ge=1024)
    """A cell that writes more than this many bytes (stdout + stderr) is killed:
    status "output_limit"."""
    mode: Literal["stateless", "session"] = "stateless"
    """stateless: a fresh namespace per cell (the paper's release). session: cells that
    share a session id share globals (one live child process per session)."""
    backend: Literal["auto", "bwrap", "fallback"] = "auto"
    """auto: bubblewrap when it works here, else the fallback (with a warning)."""
    preload: tuple[str, ...] = ("numpy", "sympy")
    """Modules the warm worker imports once, before forking cells, so that a cell's
    own ``import sympy`` is free. Empty: cells import what they need themselves."""
    startup_timeout_s: float = Field(60.0, gt=0)
    """How long the worker may take to start (preloading sympy on a busy machine)."""
    max_sessions: int = Field(16, ge=1)
    """Live sessions kept at once; the least recently used is dropped beyond this."""

    @model_validator(mode="after")
    def _output_fits(self) -> SandboxConfig:
        if self.max_output_bytes < self.max_output_chars:
            raise ValueError(
                f"max_output_bytes ({self.max_output_bytes}) must be >= max_output_chars "
                f"({self.max_output_chars}): the cap on what is captured cannot be below what is shown"
            )
        return self
