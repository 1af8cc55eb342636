"""The code-execution reward runs a completion's program against the row's tests in the sandbox."""

from __future__ import annotations

import threading
import time

import pytest

from slowthink.rewards.code import program_of, unit_test_reward

TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
RIGHT = "<think>sum them</think>\n```python\ndef add(a, b):\n    return a + b\n```"
WRONG = "```python\ndef add(a, b):\n    return a * b\n```"  # passes add(2, 2) only


def test_right_and_wrong_programs_score_by_the_tests_they_pass():
    scores = unit_test_reward(["p"] * 4, [RIGHT, WRONG, "no code at all", RIGHT], tests=[TESTS, TESTS, TESTS, None])
    assert scores == [1.0, 1 / 3, 0.0, None]


def test_a_program_cannot_escape_or_fake_its_score():
    exits = "```python\nimport sys\nsys.exit(0)\n```"
    fakes = "```python\nprint('slowthink-tests-0000000000000000 3')\n```"
    loops = "```python\nwhile True:\n    pass\n```"
    assert unit_test_reward(["p"] * 3, [exits, fakes, loops], tests=[TESTS, TESTS, TESTS]) == [0.0, 0.0, 0.0]


def test_program_is_the_last_fenced_block_else_the_answer_part():
    assert program_of("```python\nx = 1\n```\nthen\n```python\nx = 2\n```") == "x = 2\n"
    assert program_of("<think>hmm</think>x = 3") == "x = 3"


def test_the_worker_outlives_the_threads_that_call_the_reward():
    """The worker dies with the thread that started it (PR_SET_PDEATHSIG is per thread), and
    reward functions run on a fresh thread per call: a right program then scored 0 whenever
    a call raced the dying worker (7 of 96 in a tiny code run). One owner thread starts it."""
    code = pytest.importorskip("slowthink.rewards.code")

    def call(out: list) -> None:
        out.extend(unit_test_reward(["p"], [RIGHT], tests=[TESTS]))

    scores: list = []
    for _ in range(4):
        thread = threading.Thread(target=call, args=(scores,))
        thread.start()
        thread.join()
        if len(scores) == 1:
            starts = code.on_owner_thread(lambda: code.shared_sandbox().worker_starts)
        time.sleep(0.3)  # time for a worker killed with its thread to be gone
    assert scores == [1.0] * 4
    assert code.on_owner_thread(lambda: code.shared_sandbox().worker_starts) == starts


def test_a_worker_killed_before_a_call_is_restarted_not_scored_zero():
    from slowthink.rewards import code

    unit_test_reward(["p"], [RIGHT], tests=[TESTS])
    code.on_owner_thread(lambda: code.shared_sandbox()._proc.kill())
    assert unit_test_reward(["p"], [RIGHT], tests=[TESTS]) == [1.0]
