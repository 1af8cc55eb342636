"""What a cell may do: resource limits and the seccomp filter, applied in the child
right after ``fork`` and before the cell's code runs.

Standard library plus ``pyseccomp`` only: this module runs inside the sandbox worker.
Refused system calls fail with an errno (``PermissionError`` in Python) rather than
killing the process, so a cell that tries ``os.fork()`` gets an ordinary error status
the model can read, and the worker stays in charge of every kill.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from dataclasses import dataclass

import pyseccomp as sc

CLONE_THREAD = 0x00010000
O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 0o3, 0o1, 0o2, 0o100, 0o1000, 0o2000
NOBODY = 65534
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

# Never needed by a computation; each one could reach outside the cell.
_DENIED = (
    "fork",
    "vfork",
    "execve",
    "execveat",  # new processes and programs
    "socket",
    "socketpair",  # any network or local IPC endpoint
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "setrlimit",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "sethostname",
    "setdomainname",
    # System V IPC and POSIX message queues outlive the cell that made them: a later cell
    # could attach them, and without an IPC namespace (the fallback) they hold host memory.
    "shmget",
    "shmat",
    "msgget",
    "semget",
    "mq_open",
)
# Used by the fallback, which has no read-only filesystem: anything that changes a file.
_FILE_CHANGES = (
    "creat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "mknod",
    "mknodat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
)


@dataclass(frozen=True)
class CellLimits:
    """The per-cell limits (a plain dataclass: it crosses into the worker as JSON)."""

    cpu_s: int
    memory_mb: int
    file_size_mb: int
    max_threads: int
    # Fallback only: refuse every file write, since nothing else protects the host's files.
    block_writes: bool = False


def apply_rlimits(limits: CellLimits) -> None:
    """Set the limits in the calling process. The worker raises the soft CPU limit
    before each cell (``prlimit``: a child may run several cells, or wait as a spare),
    so the hard limit stays open; seccomp stops the cell itself from raising anything,
    and the wall deadline catches a cell that ignores SIGXCPU."""
    mib = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mib, limits.memory_mb * mib))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mib, limits.file_size_mb * mib))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_threads, limits.max_threads))


def drop_root() -> None:
    """Fallback as root: the worker (and so every cell) becomes nobody, so the host's
    files and other processes' /proc entries are closed to cells. Done in the worker,
    not per cell, so that the worker can still ``prlimit`` its children (same uid)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def build_filter(block_writes: bool) -> bytes:
    """The seccomp program as raw BPF, built once by the worker with libseccomp.

    Children load these bytes with one ``prctl`` (``load_filter``) instead of asking
    libseccomp to compile the filter again after every fork (~4 ms here): the rules
    do not depend on the child, so one compiled program serves them all.
    """
    deny = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in _DENIED:
        _add(flt, deny, name)
    # Threads yes (numpy, concurrent code), processes no: clone without CLONE_THREAD fails.
    flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    # clone3 passes its flags in memory seccomp cannot read: ENOSYS makes glibc use clone.
    _add(flt, sc.ERRNO(errno.ENOSYS), "clone3")
    # No signals to anyone, itself included: kill(getppid()), kill(-1), kill(0) all fail.
    # (abort() still ends the cell: glibc falls back to a faulting instruction.)
    for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
        _add(flt, deny, name)
    # Reading a limit is fine (resource.getrlimit uses prlimit64 with new=NULL); setting is not.
    flt.add_rule(deny, "prlimit64", sc.Arg(2, sc.NE, 0))
    if block_writes:
        _block_file_writes(flt, deny)
    memfd = os.memfd_create("seccomp-bpf")
    try:
        flt.export_bpf(_Fd(memfd))
        os.lseek(memfd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(memfd, 65536):
            chunks.append(chunk)
    finally:
        os.close(memfd)
    return b"".join(chunks)


class _Fd:
    """The object pyseccomp's export wants: anything with ``fileno()``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_filter(program: bytes) -> None:
    """Install a BPF program from ``build_filter`` in the calling thread (irreversible)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    # no_new_privs first: required to load a filter without CAP_SYS_ADMIN, and it
    # stops any set-uid path from regaining privileges.
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter not loaded: {os.strerror(err)}")


def _block_file_writes(flt: sc.SyscallFilter, deny: int) -> None:
    """Refuse opening for write/create/truncate/append, and every call that edits the tree."""
    for name, flags_arg in (("open", 1), ("openat", 2)):
        flt.add_rule(deny, name, sc.Arg(flags_arg, sc.MASKED_EQ, O_ACCMODE, O_WRONLY))
        flt.add_rule(deny, name, sc.Arg(flags_arg, sc.MASKED_EQ, O_ACCMODE, O_RDWR))
        for bit in (O_CREAT, O_TRUNC, O_APPEND):
            flt.add_rule(deny, name, sc.Arg(flags_arg, sc.MASKED_EQ, bit, bit))
    # openat2 takes its flags in a struct: ENOSYS sends glibc back to openat.
    _add(flt, sc.ERRNO(errno.ENOSYS), "openat2")
    for name in _FILE_CHANGES:
        _add(flt, deny, name)


def _add(flt: sc.SyscallFilter, action: int, name: str) -> None:
    """Add a rule, skipping system calls this architecture does not have (e.g. ``open`` on arm64)."""
    try:
        flt.add_rule(action, name)
    except (ValueError, RuntimeError, OSError):
        # pyseccomp raises when libseccomp cannot resolve the name on this architecture.
        if _resolves(name):
            raise


def _resolves(name: str) -> bool:
    try:
        return sc.resolve_syscall(sc.system_arch(), name) >= 0
    except (ValueError, RuntimeError, OSError):
        return False


def restrict_child(limits: CellLimits, program: bytes) -> None:
    """Everything a freshly forked child does before running a cell; ``program`` is
    ``build_filter(limits.block_writes)``."""
    apply_rlimits(limits)
    load_filter(program)
