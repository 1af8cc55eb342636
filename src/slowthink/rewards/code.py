"""A code-execution reward: a completion's program against the row's unit tests, in the sandbox.

RL beyond math (the paper's future work) needs only a reward of another kind. This one is
an ordinary reward function with TRL's signature, named in a config like any user's::

    reward:
      functions: {tests: "slowthink.rewards.code:unit_test_reward"}
      weights: {tests: 1.0}

The program is the completion's last fenced code block (```python ... ```; with no fence, the
text after ``</think>`` or the whole completion). It runs in the sandbox
(``slowthink.sandbox``: an isolated worker, a deadline, memory and output limits), then
each of the row's tests (the ``tests`` column: a list of assert statements, or one block of
code) runs in its namespace. The reward is the share of tests that pass; a row without
tests is not applicable (None). The pass count is printed after a random marker the
program cannot know, so a program cannot print its own score.
"""

from __future__ import annotations

import atexit
import re
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slowthink.sandbox import SandboxConfig

_FENCE_RE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
# The harness: run the program, then each test, in one namespace; SystemExit is caught too.
_HARNESS = """\
__ns = {{"__name__": "__main__"}}
__passed = 0
try:
    exec(compile({program!r}, "<completion>", "exec"), __ns)
    __ran = True
except BaseException:
    __ran = False
if __ran:
    for __test in {tests!r}:
        try:
            exec(compile(__test, "<test>", "exec"), __ns)
            __passed += 1
        except BaseException:
            pass
print({marker!r}, __passed)
"""
# Per-program limits: a test set is small, a model-written loop may not be.
SANDBOX = SandboxConfig(timeout_s=5.0, cpu_s=5, memory_mb=1024, preload=())

# What the sandbox's host answers when its worker died under a cell (not the cell's own doing).
WORKER_DIED = "[sandbox: the worker died"

_sandbox: Any = None
_owner: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def program_of(completion: str) -> str:
    """The code a completion submits: its last fenced block, else its answer part."""
    blocks = _FENCE_RE.findall(completion)
    if blocks:
        return blocks[-1]
    return completion.split("</think>")[-1]


def tests_of(tests: Any) -> list[str] | None:
    """The row's tests as a list of statements; None when the row has none."""
    if tests is None or tests == "" or tests == []:
        return None
    if isinstance(tests, str):
        return [tests]
    return [str(t) for t in tests]


def run_tests(program: str, tests: Sequence[str], sandbox: Any) -> float:
    """Share of ``tests`` that pass after ``program`` ran, in one sandbox cell.

    A worker that died under the cell (the machine, not the program) is retried once, then
    raised: a sandbox failure must never score as a wrong program."""
    marker = f"slowthink-tests-{secrets.token_hex(8)}"
    cell = _HARNESS.format(program=program, tests=list(tests), marker=marker)
    result = sandbox.run(cell)
    if result.status == "crashed" and result.stderr.startswith(WORKER_DIED):
        result = sandbox.run(cell)
        if result.status == "crashed" and result.stderr.startswith(WORKER_DIED):
            raise RuntimeError(f"the sandbox worker died twice running one program: {result.stderr.strip()[:300]}")
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(marker + " "):
            return int(line.split()[-1]) / len(tests)
    return 0.0  # killed (timeout, memory, output) before it could report: nothing passed


def shared_sandbox() -> Any:
    """One sandbox worker per process, started on first use and stopped at exit.

    Call it on the owner thread only (``on_owner_thread``): the worker asks the kernel to kill
    it when the thread that started it ends (PR_SET_PDEATHSIG is per thread), and a reward
    function is called on a fresh thread per call (rewards/functions.py)."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            from slowthink.sandbox import ProcessSandbox

            _sandbox = ProcessSandbox(SANDBOX)
            atexit.register(_sandbox.close)
        return _sandbox


def on_owner_thread(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` on the one long-lived thread that starts and restarts the worker."""
    global _owner
    with _lock:
        if _owner is None:
            _owner = ThreadPoolExecutor(1, thread_name_prefix="slowthink-code-sandbox")
    return _owner.submit(fn, *args).result()


def _score(program: str, cases: list[str]) -> float:
    return run_tests(program, cases, shared_sandbox())


def unit_test_reward(prompts: Sequence[Any], completions: Sequence[str], tests: Sequence[Any] | None = None, **columns: Any) -> list[float | None]:
    """Share of each row's unit tests its completion's program passes (None: the row has none)."""
    tests = tests if tests is not None else [None] * len(completions)
    scores: list[float | None] = []
    for completion, row_tests in zip(completions, tests):
        cases = tests_of(row_tests)
        scores.append(None if cases is None else on_owner_thread(_score, program_of(completion), cases))
    return scores
