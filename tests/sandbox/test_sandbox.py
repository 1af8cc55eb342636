"""Ordinary behaviour of the sandbox: statuses, display rules, sessions, limits, CLI.

Hostile cells live in ``hostile_cells.py`` and run in a jail (``test_hostile.py``).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slowthink.config import ConfigError, load_config
from slowthink.sandbox import CELL_STATUSES, ProcessSandbox, Sandbox, SandboxConfig


@pytest.fixture(scope="module")
def sandbox():
    with ProcessSandbox(SandboxConfig(timeout_s=1.5, cpu_s=2, preload=("sympy",))) as box:
        yield box


@pytest.fixture(scope="module")
def sessions():
    with ProcessSandbox(SandboxConfig(timeout_s=1.5, cpu_s=2, mode="session", preload=())) as box:
        yield box


def test_the_implementation_satisfies_the_protocol(sandbox):
    assert isinstance(sandbox, Sandbox)
    assert set(CELL_STATUSES) == {"ok", "error", "timeout", "memory", "output_limit", "crashed"}


def test_printed_output_and_wall_time(sandbox):
    result = sandbox.run("print('hello')\nprint(6 * 7)")
    assert (result.status, result.stdout, result.stderr, result.error) == ("ok", "hello\n42\n", "", None)
    assert 0 < result.wall_s < 1.5


def test_last_expression_is_shown_only_when_nothing_was_printed(sandbox):
    assert sandbox.run("x = 20\nx * 2 + 2").stdout == "42\n"
    assert sandbox.run("print('a')\n1 + 1").stdout == "a\n"
    # None is not shown, as in a notebook.
    assert sandbox.run("x = [3, 1, 2]\nx.sort()").stdout == ""


def test_sympy_cell_is_cheap_because_sympy_was_preloaded(sandbox):
    result = sandbox.run("import sympy as sp\nx = sp.symbols('x')\nsp.solve(x**2 - 4, x)")
    assert (result.status, result.stdout) == ("ok", "[-2, 2]\n")
    assert result.wall_s < 1.0


def test_an_exception_gives_error_with_its_last_traceback_line(sandbox):
    result = sandbox.run("a = 1\nb = 0\na / b")
    assert result.status == "error"
    assert result.error == "ZeroDivisionError: division by zero"
    assert 'File "<cell>", line 3' in result.stderr and "a / b" in result.stderr


def test_a_syntax_error_is_an_error_status(sandbox):
    result = sandbox.run("def f(:\n  pass")
    assert (result.status, result.error) == ("error", "SyntaxError: invalid syntax")
    assert result.stderr.startswith('  File "<cell>", line 1') and "slowthink" not in result.stderr


# A cell the parser cannot hold used to report `error` with the worker's own traceback.
TOO_BIG_TO_COMPILE = {
    "12 MB expression": "print(" + '"a"+' * (3 * 1024 * 1024) + '"b")\n',
    "deep unary chain": "-" * 100_000 + "1\n",
}


@pytest.mark.parametrize("case", list(TOO_BIG_TO_COMPILE))
def test_a_cell_too_big_to_compile_reports_memory_with_its_own_error_only(case):
    # 256 MB: the parser reaches the limit in about a second rather than four at 1 GB.
    with ProcessSandbox(SandboxConfig(timeout_s=20, memory_mb=256, preload=())) as box:
        result = box.run(TOO_BIG_TO_COMPILE[case])
        assert (result.status, result.stderr) == ("memory", "MemoryError\n")
        assert box.run("6 * 7").stdout == "42\n"


def test_a_cell_too_deep_to_compile_is_an_error_naming_only_its_recursion(sandbox):
    result = sandbox.run("x" + "[0]" * 200_000)
    assert result.status == "error" and result.error.startswith("RecursionError: maximum recursion depth")
    assert "slowthink" not in result.stderr and "Traceback" not in result.stderr
    assert sandbox.run("1 + 1").stdout == "2\n"  # and the sandbox is fine afterwards


def test_stateless_cells_share_nothing(sandbox):
    assert sandbox.run("secret_value = 5", session="s").status == "ok"
    assert sandbox.run("secret_value", session="s").error == "NameError: name 'secret_value' is not defined"


def test_sessions_keep_globals_and_are_separate(sessions):
    assert sessions.run("total = 40", session="a").status == "ok"
    assert sessions.run("total = 1", session="b").status == "ok"
    assert sessions.run("total += 2\ntotal", session="a").stdout == "42\n"
    assert sessions.run("total", session="b").stdout == "1\n"
    # Without a session id a cell is stateless even in session mode.
    assert sessions.run("total").status == "error"
    sessions.close_session("a")
    assert sessions.run("total", session="a").status == "error"


def test_a_session_that_times_out_is_reset_and_says_so(sessions):
    sessions.run("kept = 1", session="t")
    result = sessions.run("while True:\n    kept += 1", session="t")
    assert result.status == "timeout"
    assert "session was reset" in result.stderr
    assert sessions.run("kept", session="t").status == "error"
    assert sessions.run("print('alive')", session="t").stdout == "alive\n"


def test_long_output_is_truncated_head_and_tail():
    with ProcessSandbox(SandboxConfig(max_output_chars=100, preload=())) as box:
        result = box.run("print('A' * 60 + 'B' * 1000 + 'C' * 60, end='')")
    assert result.status == "ok" and result.truncated
    assert result.stdout.startswith("A" * 50 + "\n...[1020 characters cut]...\n")
    assert result.stdout.endswith("C" * 50)


def test_cpu_limit_stops_a_busy_loop_before_the_wall_deadline():
    # A generous wall deadline, so that even on a crowded machine 1 CPU-second comes first.
    with ProcessSandbox(SandboxConfig(timeout_s=20, cpu_s=1, preload=())) as box:
        result = box.run("while True:\n    pass")
    assert result.status == "timeout"
    assert "SIGXCPU" in result.stderr and "wall-clock" not in result.stderr
    assert result.wall_s < 20


def test_fallback_backend_runs_cells_and_blocks_writes(tmp_path):
    target = tmp_path / "written.txt"
    with ProcessSandbox(SandboxConfig(backend="fallback", timeout_s=1.5, preload=())) as box:
        assert box.backend == "fallback"
        assert box.run("sum(range(10))").stdout == "45\n"
        result = box.run(f"open({str(target)!r}, 'w').write('x')")
    assert result.status == "error" and "PermissionError" in result.error
    assert not target.exists()


def test_config_rejects_unknown_keys_and_impossible_values():
    with pytest.raises(ConfigError, match="unknown key 'timeout'"):
        load_config(SandboxConfig, overrides=["timeout=3"])
    with pytest.raises(ConfigError, match="'mode'"):
        load_config(SandboxConfig, overrides=["mode=jupyter"])
    with pytest.raises(ConfigError, match="max_output_bytes"):
        load_config(SandboxConfig, overrides=["max_output_bytes=2000", "max_output_chars=5000"])


def test_cli_prints_one_json_object_and_exits_zero_whatever_the_cell_did(tmp_path):
    cell = tmp_path / "cell.py"
    cell.write_text("import sys\nprint('partial')\nsys.exit(3)\n")
    script = Path(sys.executable).parent / "slowthink"
    if not script.exists():
        pytest.skip(f"the slowthink console script is not installed next to {sys.executable}")
    cmd = [str(script), "sandbox", "run", str(cell), "--set", "preload=[]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["status"], result["stdout"], result["error"]) == ("error", "partial\n", "SystemExit: 3")
    assert result["wall_s"] > 0


def test_the_fallback_says_so_in_the_log_once():
    code = (
        "import logging\nlogging.basicConfig()\n"
        "from slowthink.sandbox import ProcessSandbox, SandboxConfig\n"
        "for _ in range(2):\n"
        "    with ProcessSandbox(SandboxConfig(backend='fallback', preload=())) as box:\n"
        "        assert box.run('1').status == 'ok'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("using the fallback backend (requested in the config)") == 1


def test_a_worker_killed_from_outside_reports_crashed_and_is_replaced():
    import os
    import signal
    import threading

    with ProcessSandbox(SandboxConfig(timeout_s=5, preload=())) as box:
        pid = box.worker_pid
        killer = threading.Timer(0.5, os.killpg, (pid, signal.SIGKILL))
        killer.start()
        result = box.run("import time\ntime.sleep(4)")
        killer.join()
        assert result.status == "crashed" and "worker died" in result.stderr
        assert result.wall_s < 4
        assert box.run("print('again')").stdout == "again\n"
        assert box.worker_starts == 2 and box.worker_pid != pid
