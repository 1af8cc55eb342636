"""Emptying a cell's scratch space (``/tmp``, ``/dev/shm``) between stateless cells.

Under bubblewrap the warm worker and every cell it forks share one mount namespace, so a
file a cell leaves in its private tmpfs would be read by the next cell and would hold
memory (host ``Shmem``) until the worker ends. The worker empties those folders once a
stateless cell's child is dead (``worker.Worker.after_reply``). A cell runs as the
worker's uid, so whatever it made the worker can remove, but it can make trees of any
shape: folders without permissions (chmod back first), trees deeper than any path or
recursion limit (each folder's children are moved up to the top before it is removed, so
no path is ever more than two names deep), symbolic links (removed, never followed).
Mount points (an interpreter or checkout under /tmp, bound read-only on top of the
tmpfs) and the folders leading to them are kept. Standard library only.
"""

from __future__ import annotations

import os
import re
import stat

MOUNTINFO = "/proc/self/mountinfo"


def mount_points(mountinfo: str = MOUNTINFO) -> set[str]:
    """Every mount point this process sees (field 5 of mountinfo, octal escapes decoded)."""
    try:
        with open(mountinfo) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return set()
    points = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def empty_scratch(folders: list[str]) -> list[str]:
    """Empty each folder (keeping mounts); returns the entries that could not be removed."""
    if not folders:
        return []  # the fallback: no scratch space of its own
    mounts = mount_points()
    left = []
    for folder in folders:
        left += empty_dir(folder, {m for m in mounts if m != folder})
    return left


def empty_dir(root: str, mounts: set[str]) -> list[str]:
    """Remove everything under ``root`` except ``mounts`` and the folders above them; returns
    what is left besides those (nothing, unless the kernel refused a removal)."""
    kept_mounts = {m for m in mounts if m.startswith(root.rstrip("/") + "/")}
    keep = kept_mounts | _ancestors(kept_mounts, root)
    names = _FreeNames(root)
    while True:
        try:
            entries = [entry for entry in os.scandir(root) if entry.path not in keep]
        except OSError:
            return []  # no such folder (the fallback, or /dev/shm missing): nothing to empty
        # Folders above a mount stay; what a cell put beside the mount is lifted to the top.
        progressed = any([_lift_children(folder, keep, names) for folder in sorted(keep - kept_mounts)])
        for entry in entries:
            progressed |= _remove_one_level(entry, keep, names)
        if not progressed:
            return [entry.path for entry in entries]


class _FreeNames:
    """Fresh names at the top of the folder being emptied, for lifted sub-folders."""

    def __init__(self, root: str) -> None:
        self.root, self.index = root, 0

    def next(self) -> str:
        while True:
            self.index += 1
            candidate = os.path.join(self.root, f".scratch-{self.index}")
            if not os.path.lexists(candidate):
                return candidate


def _remove_one_level(entry: os.DirEntry, keep: set[str], names: _FreeNames) -> bool:
    """Unlink a file or link; for a folder, lift its sub-folders to the top and remove the rest."""
    try:
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
            return True
        _lift_children(entry.path, keep, names)
        os.rmdir(entry.path)
        return True
    except OSError:
        return False


def _lift_children(folder: str, keep: set[str], names: _FreeNames) -> bool:
    """Unlink ``folder``'s files and move its sub-folders (not kept ones) up to the top."""
    try:
        os.chmod(folder, stat.S_IRWXU)  # a cell may have taken its own permissions away
    except OSError:
        pass
    try:
        children = list(os.scandir(folder))
    except OSError:
        return False
    progressed = False
    for child in children:
        if child.path in keep:
            continue
        try:
            if child.is_dir(follow_symlinks=False):
                os.rename(child.path, names.next())
            else:
                os.unlink(child.path)
            progressed = True
        except OSError:
            continue
    return progressed


def _ancestors(paths: set[str], root: str) -> set[str]:
    """The folders between ``root`` (excluded) and each of ``paths``."""
    found = set()
    prefix = root.rstrip("/") + "/"
    for path in paths:
        parent = os.path.dirname(path)
        while parent.startswith(prefix):
            found.add(parent)
            parent = os.path.dirname(parent)
    return found
