"""durable.atomic_writer: the one temp-file-and-rename writer (atomic_write_bytes and score use it)."""

from __future__ import annotations

import os
import stat

import pytest

from slowthink.durable import atomic_write_text, atomic_writer


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "out.jsonl"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(path, "w", encoding="utf-8") as handle:
            handle.write("half of the new")
            raise RuntimeError("killed mid-way")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_finished_write_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_writer(path, "w", encoding="utf-8") as handle:
        handle.write("new\n")
    assert path.read_text() == "new\n" and len(list(path.parent.iterdir())) == 1


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_a_plain_write_gives(tmp_path, umask):
    """mkstemp alone creates 0600: a checkpoint's `latest`, config.yaml or a score output were
    unreadable to a group that could read everything else the run wrote."""
    old = os.umask(umask)
    try:
        (tmp_path / "plain.txt").write_text("x")
        atomic_write_text(tmp_path / "atomic.txt", "x")
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode) == plain == 0o666 & ~umask


def test_an_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    path.chmod(0o640)
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "data" / "pool.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "pool.jsonl"
    link.symlink_to(target)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "pool.jsonl"]


def test_a_special_file_is_written_directly_not_replaced(tmp_path):
    """`--out /dev/stdout` or a FIFO: renaming a temp file over it would replace the device."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open does not block
    try:
        atomic_write_text(fifo, "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]
