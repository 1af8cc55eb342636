"""metrics.jsonl on resume: a row that cannot be read is kept aside with a warning, never
dropped in silence, and never crashes the resume (a `null` row, bytes that are not UTF-8)."""

from __future__ import annotations

import json

import pytest

from slowthink.tracking import JsonlTracker, read_metrics, truncate_metrics

GOOD = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}, {"step": 3, "loss": 0.25}]


def _lines(rows) -> list[bytes]:
    return [json.dumps(r).encode() for r in rows]


@pytest.mark.parametrize(
    "damaged",
    [b'{"step": 2, "lo', b"null", b'{"step": 2, "loss": 0.5}\xff\xfe', b"[1, 2]", b'{"step": "two"}', b"\x00\x00\x00\x00"],
)
def test_an_unreadable_middle_row_is_kept_aside_and_named_by_line(tmp_path, capsys, damaged):
    path = tmp_path / "metrics.jsonl"
    lines = _lines(GOOD)
    lines[1] = damaged
    path.write_bytes(b"\n".join(lines) + b"\n")
    truncate_metrics(path, last_step=3)
    assert read_metrics(path) == [GOOD[0], GOOD[2]]
    side = tmp_path / "metrics.jsonl.unreadable"
    assert side.read_bytes() == damaged + b"\n"  # nothing lost
    assert f"{path} line(s) 2 cannot be read" in capsys.readouterr().err


def test_a_resumed_tracker_over_a_null_row_appends_after_the_good_rows(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"null\n" + b"\n".join(_lines(GOOD)) + b"\n")
    tracker = JsonlTracker(path, resume=True, last_step=2)
    tracker.log({"loss": 0.3}, step=3)
    tracker.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
    assert "line(s) 1 cannot be read" in capsys.readouterr().err


def test_a_torn_last_row_is_dropped_quietly(tmp_path, capsys):
    """A kill mid-write cuts the last row: that step is logged again after the resume."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"\n".join(_lines(GOOD[:2])) + b'\n{"step": 3, "lo')
    truncate_metrics(path, last_step=3)
    assert read_metrics(path) == GOOD[:2]
    assert not (tmp_path / "metrics.jsonl.unreadable").exists()
    assert capsys.readouterr().err == ""


def test_read_metrics_skips_rows_that_are_not_objects(tmp_path):
    """report, study and the length-hacking monitor read rows with .get: a null must not reach them."""
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b"null\n" + _lines(GOOD)[0] + b"\n\xff\n42\n")
    assert read_metrics(path) == [GOOD[0]]
