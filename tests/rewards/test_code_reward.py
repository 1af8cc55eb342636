"""The code-execution reward runs a completion's program against the row's tests in the sandbox."""

from __future__ import annotations

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
