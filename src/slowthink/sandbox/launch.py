"""How the worker is started: the bubblewrap command line, the fallback, and the choice.

bubblewrap (docs/design.md, "The sandbox"): every namespace unshared (no network, own PIDs,
own user, nothing to kill outside), the system mounted read-only, only the Python
installation and slowthink bound in (no /etc/shadow, no home directories), a small
private /tmp and /dev/shm, an empty environment, death with the parent. When bubblewrap cannot run
here (no user namespaces in a container, or not installed), the fallback runs the same
worker as a plain process whose cells add a seccomp rule against every file write and,
under root, run as nobody; a warning says so once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import subprocess
import sys
from functools import cache
from pathlib import Path

import slowthink
from slowthink.sandbox.config import SandboxConfig
from slowthink.sandbox.policy import NOBODY, CellLimits

log = logging.getLogger(__name__)
_warned: set[str] = set()

# The only environment the worker sees: nothing from the host (secrets live there).
WORKER_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    # One thread per math library: the machine's cores belong to training (docs/design.md, "Two cores").
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
# Modules a math cell commonly imports, preloaded by the fallback when it runs cells as
# nobody: nobody may not be able to read a Python installed under /root.
FALLBACK_PRELOAD = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "itertools",
    "functools",
    "collections",
    "random",
    "statistics",
    "re",
    "string",
    "heapq",
    "bisect",
    "json",
)


# The cell's writable folders under bubblewrap (private, size-capped tmpfs mounts).
SCRATCH_FOLDERS = ("/tmp", "/dev/shm")


class SandboxUnavailable(RuntimeError):
    """The requested backend cannot run on this machine; the message says why."""


def worker_config(config: SandboxConfig, backend: str) -> dict:
    """The JSON the worker receives on its command line."""
    fallback_as_root = backend == "fallback" and os.geteuid() == 0
    limits = CellLimits(
        cpu_s=config.cpu_s,
        memory_mb=config.memory_mb,
        file_size_mb=config.file_size_mb,
        max_threads=config.max_threads,
        block_writes=backend == "fallback",
    )
    preload = list(config.preload) + (list(FALLBACK_PRELOAD) if fallback_as_root else [])
    return {
        "limits": limits.__dict__,
        "mode": config.mode,
        "timeout_s": config.timeout_s,
        "max_output_chars": config.max_output_chars,
        "max_output_bytes": config.max_output_bytes,
        "max_sessions": config.max_sessions,
        "preload": preload,
        "drop_root": fallback_as_root,
        # Emptied between stateless cells: the private tmpfs mounts. The fallback has none
        # (its cells cannot write files), and must never touch the host's /tmp.
        "scratch": list(SCRATCH_FOLDERS) if backend == "bwrap" else [],
    }


def python_argv(cfg: dict) -> list[str]:
    # -I: ignore PYTHON* variables and the user's site; -B: write no .pyc files.
    return [sys.executable, "-I", "-B", "-m", "slowthink.sandbox.worker", json.dumps(cfg)]


def bwrap_argv(config: SandboxConfig) -> list[str]:
    """bubblewrap options (everything before the command)."""
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(NOBODY),
        "--gid",
        str(NOBODY),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]
    for key, value in WORKER_ENV.items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", name)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    # ld.so.cache: pyseccomp finds libseccomp through ldconfig; alternatives: Debian's library links.
    for path in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"):
        argv += ["--ro-bind-try", path, path]
    # /tmp and /dev/shm: private tmpfs mounts, each capped at tmp_size_mb. --dev's own /dev is an
    # uncapped tmpfs (its shm a folder of it), so a cell could fill the host's memory through
    # it: /dev is made read-only once /dev/shm is mounted (device nodes still work), and so is
    # the root below. The worker empties both scratch folders between stateless cells (scratch.py).
    size = str(config.tmp_size_mb * 1024 * 1024)
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    argv += ["--size", size, "--tmpfs", "/tmp"]
    # Bound after the private /tmp, so an interpreter or checkout under /tmp (a CI clone, say)
    # is mounted on top of it instead of being hidden by it.
    for path in python_paths():
        argv += ["--ro-bind", path, path]
    # bubblewrap's root is a tmpfs of its own (uncapped, shared by every cell, like --dev's
    # /dev): read-only once everything is mounted on it, so /tmp and /dev/shm are the only
    # places a cell can write.
    argv += ["--remount-ro", "/", "--chdir", "/tmp"]
    return argv


def python_paths() -> list[str]:
    """Directories the worker's interpreter needs, outside /usr, without nested duplicates."""
    wanted = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        str(Path(os.path.realpath(sys.executable)).parent),
        str(Path(slowthink.__file__).resolve().parents[1]),
        *site.getsitepackages(),
    }
    real = sorted({os.path.realpath(p) for p in wanted if os.path.isdir(p)} | {p for p in wanted if os.path.isdir(p)})
    kept: list[str] = []
    for path in real:
        if path == "/usr" or path.startswith("/usr/"):
            continue
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def worker_command(config: SandboxConfig, backend: str) -> list[str]:
    argv = python_argv(worker_config(config, backend))
    return bwrap_argv(config) + ["--"] + argv if backend == "bwrap" else argv


@cache
def bwrap_problem(tmp_size_mb: int = 64) -> str | None:
    """None when bubblewrap can start Python here, else the reason it cannot."""
    if shutil.which("bwrap") is None and not os.path.exists("/usr/bin/bwrap"):
        return "bwrap is not installed (apt-get install bubblewrap)"
    cmd = bwrap_argv(SandboxConfig(tmp_size_mb=tmp_size_mb)) + ["--", sys.executable, "-I", "-c", "import slowthink.sandbox.policy"]
    try:
        proc = subprocess.run(cmd, env=WORKER_ENV, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if proc.returncode != 0:
        return f"bwrap failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
    return None


def resolve_backend(choice: str) -> str:
    """'auto' -> 'bwrap' when it works, else 'fallback'; 'bwrap' must work. Using the
    fallback is logged as a warning once per process, with the reason."""
    if choice in ("auto", "bwrap"):
        problem = bwrap_problem()
        if problem is None:
            return "bwrap"
        if choice == "bwrap":
            raise SandboxUnavailable(f"sandbox backend 'bwrap' requested but unusable: {problem}")
        reason = f"bubblewrap unusable ({problem})"
    else:
        reason = "requested in the config"
    if not _warned:
        _warned.add("fallback")
        log.warning(
            "sandbox: using the fallback backend (%s): no namespaces; cells are limited by rlimits and "
            "seccomp (no processes, signals, sockets or file writes)%s. See docs/sandbox.md.",
            reason,
            ", and run as nobody" if os.geteuid() == 0 else "",
        )
    return "fallback"
