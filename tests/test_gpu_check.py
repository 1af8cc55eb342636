"""``make gpu-check`` in its dry mode: every case of bench/gpu_check.py runs on the CPU, so the script does not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_the_dry_run_passes_every_case_and_writes_both_summaries(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {c["case"]: c.get("error") for c in summary["cases"] if c["status"] != "pass"}
    assert result.returncode == 0 and not failed, (failed, result.stderr[-2000:])
    assert summary["dry"] and len(summary["cases"]) >= 9
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {c['case']} | pass |" in table for c in summary["cases"])
