"""Runs the hostile cells (``hostile_cells.py``) in a jail: a new PID namespace plus a
pids-limited cgroup (as root), or a user + PID namespace with RLIMIT_NPROC (otherwise),
so that a sandbox bug (a fork bomb that gets through) cannot take the machine down.
Skips, saying why, where neither jail can be built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MAX_PIDS = 256
CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


def make_pids_cgroup() -> Path | None:
    """A fresh cgroup with pids.max set (cgroup v1 pids hierarchy or v2), or None."""
    if os.geteuid() != 0:
        return None
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        if root.name != "pids" and "pids" not in (root / "cgroup.subtree_control").read_text(errors="ignore"):
            continue
        group = root / f"slowthink-hostile-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(MAX_PIDS))
            return group
        except OSError:
            continue
    return None


def jail_command(group: Path | None) -> list[str] | str:
    """The command prefix for the jail, or a string saying why there is none."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux 'unshare' is not installed"
    if group is not None:
        # Join the cgroup first (the shell's pid), then unshare into a new PID namespace.
        prefix = ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$0" "$@"', unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix
        return f"the pids cgroup {group} or a PID namespace is not usable: {probe.stderr.strip()}"
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0 or os.geteuid() == 0:
        return (
            "no pids-limited cgroup could be created and an unprivileged user+PID namespace with "
            f"RLIMIT_NPROC is not available here ({probe.stderr.decode().strip() or 'running as root'})"
        )
    return [unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child", "prlimit", f"--nproc={MAX_PIDS}", "--"]


@pytest.mark.slow  # ~23 s: every hostile cell in its own jail
def test_hostile_cells_in_a_jail():
    group = make_pids_cgroup()
    try:
        prefix = jail_command(group)
        if isinstance(prefix, str):
            pytest.skip(f"hostile sandbox suite not run: {prefix}")
        env = {
            **os.environ,
            "SLOWTHINK_TEST_SECRET": "s3cr3t-" + os.urandom(8).hex(),
            "OMP_NUM_THREADS": "1",
            "SLOWTHINK_HOSTILE_JAIL": f"cgroup:{group}" if group is not None else "userns",
        }
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "hostile_cells.py"),
            "-q",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "--timeout=60",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=HERE.parents[1])
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
    finally:
        if group is not None:
            _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)  # its last processes are still exiting
