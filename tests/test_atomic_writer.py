"""durable.atomic_writer: the one temp-file-and-rename writer (atomic_write_bytes and score use it)."""

from __future__ import annotations

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
