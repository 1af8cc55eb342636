"""A cell's scratch space: a private, size-capped /tmp and /dev/shm, emptied between
stateless cells, and no System V shared memory (which outlives its process)."""

from __future__ import annotations

import time

import pytest

from slowthink.sandbox import ProcessSandbox, SandboxConfig
from slowthink.sandbox.launch import bwrap_problem
from slowthink.sandbox.scratch import empty_dir

needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap unusable here: {bwrap_problem()}")

# Writes 15 MiB files until one fails; prints how many MiB were written and what failed.
FILL = """
import os
written = 0
try:
    for k in range({files}):
        with open('{folder}/big_%d' % k, 'wb') as handle:
            handle.write(b'x' * (15 << 20))
        written += 15
except OSError as exc:
    print('refused', type(exc).__name__)
print(written)
"""
# What a cell left in the scratch folders: entries that hold none of the sandbox's own read-only
# mount points (a checkout under /tmp, e.g. CI's clone, has its venv bound beneath /tmp).
LEFT = """
import os
mounts = [line.split()[1] for line in open('/proc/self/mounts')]
def left(folder):
    def holds_mount(path):
        return any(m == path or m.startswith(path + '/') for m in mounts)
    return sorted(n for n in os.listdir(folder) if not holds_mount(os.path.join(folder, n)))
"""
LIST = LEFT + "print(left('/tmp'), left('/dev/shm'))"
# Size and bytes in use of the file system holding a folder.
USAGE = "import os\ns = os.statvfs('{folder}')\nprint(s.f_blocks * s.f_frsize, (s.f_blocks - s.f_bfree) * s.f_frsize)"
SYSV = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.shmget(4242, 1 << 20, 0o1666), libc.msgget(4243, 0o1666), libc.semget(4244, 1, 0o1666))
"""


def host_shmem_mb() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("Shmem:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Shmem line in /proc/meminfo")


@needs_bwrap
@pytest.mark.parametrize("folder", ["/dev/shm", "/tmp"])
def test_a_cell_cannot_fill_the_host_memory_through_a_tmpfs(folder):
    with ProcessSandbox(SandboxConfig(backend="bwrap", tmp_size_mb=32, timeout_s=10, preload=())) as box:
        result = box.run(FILL.format(files=10, folder=folder))
        # 32 MiB hold two 15 MiB files; the third is refused (no space left on device).
        assert result.status == "ok" and result.stdout.split() == ["refused", "OSError", "30"], result
        # Its own tmpfs, of the configured size (not the host's /dev/shm, not /dev's tmpfs).
        assert box.run(USAGE.format(folder=folder)).stdout.split()[0] == str(32 << 20)


@needs_bwrap
def test_a_later_stateless_cell_does_not_see_an_earlier_cells_files():
    with ProcessSandbox(SandboxConfig(backend="bwrap", tmp_size_mb=32, timeout_s=10, preload=())) as box:
        before = host_shmem_mb()
        for _ in range(10):  # 10 x 30 MiB: the host's Shmem would grow by 300 MiB if nothing were freed
            assert box.run(FILL.format(files=2, folder="/dev/shm")).stdout.strip() == "30"
            assert box.run("open('/tmp/note', 'w').write('left behind')").status == "ok"
            assert box.run(LIST).stdout == "[] []\n"
            # Emptied means freed: nothing in use on either tmpfs (sizes, used bytes).
            assert box.run(USAGE.format(folder="/dev/shm")).stdout.split()[1] == "0"
            assert box.run(USAGE.format(folder="/tmp")).stdout.split()[1] == "0"
        # Loose: other processes on the machine may use shared memory meanwhile.
        assert host_shmem_mb() - before < 100
        # The scratch space still works after being emptied: folders, nested files.
        made = box.run("import os\nos.makedirs('/tmp/a/b')\nopen('/tmp/a/b/c', 'w').write('x')\nos.chmod('/tmp/a', 0)")
        assert made.status == "ok", made
        assert box.run(LIST).stdout == "[] []\n"


@needs_bwrap
def test_sessions_keep_their_files_while_they_live():
    config = SandboxConfig(backend="bwrap", mode="session", timeout_s=10, preload=())
    with ProcessSandbox(config) as box:
        assert box.run("open('/tmp/kept', 'w').write('x')", session="s").status == "ok"
        assert box.run(LEFT + "print(left('/tmp'))", session="s").stdout == "['kept']\n"
        box.close_session("s")
        box.run("1")  # a stateless cell once no session is live: the scratch space is emptied
        assert box.run(LIST).stdout == "[] []\n"


@pytest.mark.parametrize("backend", ["fallback", pytest.param("bwrap", marks=needs_bwrap)])
def test_system_v_shared_memory_is_refused(backend):
    # A System V segment outlives the cell that made it: a later cell could attach it, and
    # without an IPC namespace (the fallback) it stays in the host's memory for good.
    with ProcessSandbox(SandboxConfig(backend=backend, preload=())) as box:
        result = box.run(SYSV)
    assert result.stdout == "-1 -1 -1\n", result


def test_fallback_cells_leave_nothing_in_dev_shm_for_later_cells():
    with ProcessSandbox(SandboxConfig(backend="fallback", preload=())) as box:
        result = box.run("open('/dev/shm/slowthink_probe', 'w').write('x')")
        assert result.status == "error" and "PermissionError" in result.error
        seen = box.run("import os\nprint(os.path.exists('/dev/shm/slowthink_probe'))")
        assert seen.stdout == "False\n", seen


def test_emptying_keeps_mount_points_and_the_folders_above_them(tmp_path):
    (tmp_path / "ci" / "checkout").mkdir(parents=True)
    (tmp_path / "ci" / "checkout" / "src.py").write_text("kept")
    (tmp_path / "ci" / "stray.txt").write_text("x")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "f").write_text("x")
    (tmp_path / "deep").chmod(0)
    (tmp_path / "link").symlink_to(tmp_path / "ci" / "checkout")
    empty_dir(str(tmp_path), mounts={str(tmp_path / "ci" / "checkout")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci"]
    assert [p.name for p in (tmp_path / "ci").iterdir()] == ["checkout"]
    assert (tmp_path / "ci" / "checkout" / "src.py").read_text() == "kept"


def test_emptying_a_missing_folder_is_nothing():
    empty_dir(f"/nonexistent-{time.time_ns()}", mounts=set())


def test_mount_points_decode_escaped_names(tmp_path):
    from slowthink.sandbox.scratch import mount_points

    info = tmp_path / "mountinfo"
    info.write_text("36 35 98:0 / /tmp/my\\040checkout ro - ext3 /dev/root ro\n37 35 0:5 / /tmp rw - tmpfs tmpfs rw\n")
    assert mount_points(str(info)) == {"/tmp/my checkout", "/tmp"}


@needs_bwrap
def test_the_scratch_folders_are_the_only_writable_places():
    # /dev is bubblewrap's own tmpfs, uncapped: it was writable (a file in /dev/x held host memory).
    probe = """
import os, sys
written = []
for folder in ['/dev', '/dev/pts', '/', '/etc', '/usr', '/proc', os.path.dirname(sys.executable), '/tmp', '/dev/shm']:
    try:
        with open(os.path.join(folder, 'probe'), 'w') as handle:
            handle.write('x')
        written.append(folder)
    except OSError:
        pass
print(written)
"""
    with ProcessSandbox(SandboxConfig(backend="bwrap", preload=())) as box:
        result = box.run(probe)
        assert result.stdout == "['/tmp', '/dev/shm']\n", result
        # Device nodes still work on the read-only /dev.
        assert box.run("open('/dev/null', 'w').write('x')\nprint(len(open('/dev/urandom', 'rb').read(4)))").stdout == "4\n"
