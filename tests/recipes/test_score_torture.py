"""``slowthink score`` over a file of hostile rows mixed with normal ones: the run completes in bounded time, every row gets a status in input order with
its line number, and the normal rows are scored as they would be alone."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from slowthink.cli import app


def normal(gold: str, answer: str) -> bytes:
    return json.dumps({"answer": gold, "response": f"Thinking... so \\boxed{{{answer}}}"}).encode()


def response_row(gold: str, response: str) -> bytes:
    # ensure_ascii keeps lone surrogates as \udcff escapes, as a JSON writer would.
    return json.dumps({"answer": gold, "response": response}).encode()


# (line bytes, expected status or None for "any status"); normal rows have a fixed verdict.
CASES = [
    (normal("1", "1"), "correct"),
    (response_row("2", "\udcff lone surrogate \\boxed{2}"), "correct"),
    (b'{"answer": "3", "response": "caf\xe9 \\\\boxed{3}"}', "error"),  # invalid UTF-8
    (normal("4", "5"), "wrong"),
    (b'{"answer": "5", "response": "nul \x00 \\\\boxed{5}"}', "error"),  # a raw NUL: not valid JSON
    (response_row("6", "escaped nul \u0000 \\boxed{6}"), "correct"),
    (b'{"answer": "7",\r "response": "\\\\boxed{7}"}', "correct"),  # a bare \r inside the line
    (b"[" * 100_000 + b"]" * 100_000, "error"),  # nested too deeply for json
    (response_row("8", "\\boxed{" + "9" * 2_000_000 + "}"), "wrong"),  # a 2-million-digit answer
    (response_row("9", "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"), "wrong"),  # 10,000 nested braces
    (response_row("10", "\\boxed{9^{9^{9}}}"), None),  # wrong or timeout, but a status, in bounded time
    (response_row("11", "All work and no play. " * 48_000 + "\\boxed{11}"), "correct"),  # ~1 MB of prose
    (normal("12", "12"), "correct"),
    (normal("\\frac{1}{2}", "0.5"), "correct"),
]


@pytest.mark.slow
def test_score_survives_a_file_of_hostile_rows(tmp_path):
    src = tmp_path / "torture.jsonl"
    src.write_bytes(b"\n".join(line for line, _ in CASES) + b"\n")
    out = tmp_path / "scored.jsonl"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["score", str(src), "--out", str(out), "--timeout", "2"])
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.output
    # Bounded: each check has a 2 s deadline; the rest is linear in the file's size.
    assert elapsed < 60, f"scoring took {elapsed:.0f}s"
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == list(range(1, len(CASES) + 1))
    for row, (_, expected) in zip(rows, CASES):
        assert row["status"] in ("correct", "wrong", "no_answer", "timeout", "error")
        if expected is not None:
            assert row["status"] == expected, (row["line"], row.get("error"), row["status"])
    assert rows[10]["status"] in ("wrong", "timeout")  # 9^{9^{9}}
    assert rows[1]["response"].startswith("\udcff")  # the lone surrogate survives the round trip
    for line in (3, 5, 8):
        assert f"torture.jsonl:{line}: " in result.stderr
