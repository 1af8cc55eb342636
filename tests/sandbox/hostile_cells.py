"""Hostile cells. Not collected directly: ``test_hostile.py`` runs this file under pytest
inside its own PID namespace and a pids-limited cgroup, so that a sandbox bug cannot
take the test machine down. Every case checks four things: a status within the
deadline, nothing reached the host, this process survived, and the next cell runs.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from slowthink.sandbox import ProcessSandbox, SandboxConfig

TIMEOUT_S = 2.0
# The worker's deadline plus the host's grace, plus slack for two busy cores.
DEADLINE_S = TIMEOUT_S + 3.0
SECRET = os.environ.get("SLOWTHINK_TEST_SECRET", "")
JAIL = os.environ.get("SLOWTHINK_HOSTILE_JAIL", "")
if not JAIL:
    pytest.skip("hostile cells run only inside the jail that test_hostile.py builds", allow_module_level=True)


@pytest.fixture(scope="module", params=["bwrap", "fallback"])
def box(request):
    config = SandboxConfig(
        timeout_s=TIMEOUT_S, cpu_s=2, memory_mb=512, file_size_mb=8, max_output_bytes=1_000_000, backend=request.param, preload=("numpy",)
    )
    with ProcessSandbox(config) as sandbox:
        yield sandbox


def run_hostile(box, code, statuses):
    """Run one hostile cell: status in ``statuses``, on time, no secret, next cell fine."""
    start = time.monotonic()
    result = box.run(code)
    elapsed = time.monotonic() - start
    assert result.status in statuses, f"{result.status}: {result.stderr[-800:]}"
    assert elapsed < DEADLINE_S, f"took {elapsed:.1f}s"
    assert SECRET and SECRET not in result.stdout + result.stderr
    after = box.run("print(6 * 7)")
    assert (after.status, after.stdout) == ("ok", "42\n"), after
    return result


def test_infinite_loop(box):
    run_hostile(box, "while True:\n    pass", {"timeout"})


def test_sleep(box):
    run_hostile(box, "import time\ntime.sleep(60)", {"timeout"})


def test_sleep_after_closing_its_own_output(box):
    run_hostile(box, "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(60)", {"timeout"})


def test_fork_bomb(box):
    result = run_hostile(box, "import os\nwhile True:\n    os.fork()", {"error"})
    assert result.error.startswith("PermissionError")


def test_thread_bomb(box):
    code = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()"
    run_hostile(box, code, {"error", "memory", "timeout"})


def test_memory_bomb(box):
    run_hostile(box, "chunks = []\nwhile True:\n    chunks.append(bytearray(10**7))", {"memory"})


def test_two_gigabyte_file(box):
    code = "with open('/tmp/big', 'wb') as f:\n    for _ in range(2048):\n        f.write(b'0' * 2**20)"
    run_hostile(box, code, {"error"})


def test_writes_to_host_files(box, tmp_path):
    targets = [tmp_path / "from_cell.txt", os.path.join(os.path.dirname(__file__), "from_cell.txt")]
    for target in targets:
        code = f"with open({str(target)!r}, 'w') as f:\n    f.write('pwned')"
        run_hostile(box, code, {"error"})
        assert not os.path.exists(target)
    run_hostile(box, f"import os\nos.system('touch {targets[0]}')", {"ok", "error"})
    assert not os.path.exists(targets[0])


def test_read_etc_shadow(box):
    result = run_hostile(box, "print(open('/etc/shadow').read())", {"error"})
    assert "root:" not in result.stdout


def test_environment_and_parent_environ_hold_no_secret(box):
    run_hostile(box, "import os\nprint(dict(os.environ))", {"ok"})
    run_hostile(box, "import os\nprint(open(f'/proc/{os.getppid()}/environ').read())", {"ok", "error"})
    code = (
        "import os\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except (OSError, ValueError):\n"
        "        pass"
    )
    run_hostile(box, code, {"ok"})
    run_hostile(box, f"print(open('/proc/{os.getpid()}/environ', 'rb').read())", {"ok", "error"})


def test_kill_parent(box):
    result = run_hostile(box, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", {"error"})
    assert result.error.startswith("PermissionError")


def test_kill_everything(box):
    run_hostile(box, "import os\nos.kill(-1, 9)", {"error"})
    run_hostile(box, "import os\nos.killpg(0, 9)", {"error"})
    run_hostile(box, f"import os\nos.kill({os.getpid()}, 9)", {"error"})


def test_os_system_and_subprocess(box):
    result = run_hostile(box, "import os\nos.system('echo escaped')", {"ok", "error"})
    assert "escaped" not in result.stdout
    result = run_hostile(box, "import subprocess\nsubprocess.run(['echo', 'escaped'])", {"error"})
    assert "escaped" not in result.stdout


def test_loopback_connection(box):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        port = server.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')"
        run_hostile(box, code, {"error"})
        with pytest.raises(socket.timeout):
            server.accept()


def test_double_fork_daemon(box, tmp_path):
    marker = tmp_path / "daemon_alive"
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        while True:\n            open({str(marker)!r}, 'a').close()\n            time.sleep(0.1)\n"
        "    os._exit(0)"
    )
    run_hostile(box, code, {"error"})
    time.sleep(0.3)
    assert not marker.exists()


def test_hundred_megabytes_of_output(box):
    result = run_hostile(box, "print('x' * 10**8)", {"output_limit"})
    assert len(result.stdout) < 10_000
    run_hostile(box, "while True:\n    print('y' * 1000)", {"output_limit"})
    run_hostile(box, "import os\nos.write(1, b'z' * 10**8)", {"output_limit"})
    run_hostile(box, "import os\nwhile True:\n    os.write(2, b'w' * 65536)", {"output_limit"})


def test_deep_recursion(box):
    assert run_hostile(box, "def f(n):\n    return f(n + 1)\nf(0)", {"error"}).error.startswith("RecursionError")
    # With the guard lifted, Python-level recursion eats the heap (3.11 frames live there)...
    code = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1) + 1\nf(0)"
    run_hostile(box, code, {"memory", "timeout"})
    # ...and C-level recursion (pickling a deeply nested list) overflows the C stack.
    code = "import pickle, sys\nsys.setrecursionlimit(10**8)\na = []\nfor _ in range(200_000):\n    a = [a]\npickle.dumps(a)"
    result = run_hostile(box, code, {"crashed"})
    assert "SIGSEGV" in result.stderr


def test_sys_exit(box):
    assert run_hostile(box, "import sys\nsys.exit(0)", {"ok"}).stdout == ""
    assert run_hostile(box, "import sys\nsys.exit(3)", {"error"}).error == "SystemExit: 3"
    run_hostile(box, "import os\nos._exit(0)", {"ok", "error", "crashed"})


def test_input(box):
    assert run_hostile(box, "input('? ')", {"error"}).error.startswith("EOFError")


def test_raising_limits_and_escaping_namespaces(box):
    code = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))"
    run_hostile(box, code, {"error"})
    run_hostile(box, "import os\nos.unshare(os.CLONE_NEWUSER)", {"error"})


def test_this_suite_runs_inside_the_jail():
    # unshare --pid --fork makes the runner one of the first processes of a new namespace.
    assert os.getpid() < 100
    if JAIL.startswith("cgroup:"):
        assert JAIL.split("/")[-1] in open("/proc/self/cgroup").read()
