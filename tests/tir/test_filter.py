"""The filter: executed code and the right answer, every other response dropped for its first reason."""

from __future__ import annotations

import pytest

from slowthink.tir.filter import FILTER_REASONS, drop_reason


def calls(*statuses: str) -> list[dict]:
    return [{"status": s, "code": "print(1)\n", "output": "1"} for s in statuses]


def test_executed_code_and_a_right_answer_is_kept():
    assert drop_reason(calls("ok"), True, "correct") is None
    assert drop_reason(calls("ok", "ok", "ok"), True, "correct") is None


def test_a_wrong_or_missing_answer_is_dropped():
    assert drop_reason(calls("ok"), True, "wrong") == "wrong_answer"
    assert drop_reason(calls("ok"), True, "no_answer") == "no_answer"
    assert drop_reason(calls("ok"), True, "timeout") == "check_timeout"
    assert drop_reason(calls("ok"), True, "unparseable_gold") == "check_unparseable_gold"


def test_no_code_or_code_never_executed_is_dropped_even_with_the_right_answer():
    assert drop_reason([], True, "correct") == "no_code"
    assert drop_reason(calls("not_executed"), True, "correct") == "unexecuted_code"
    # One block left unrun among executed ones: its text has code without output.
    assert drop_reason(calls("ok", "not_executed"), True, "correct") == "unexecuted_code"


def test_code_fences_in_the_text_that_no_tool_call_ran_are_unexecuted_code():
    ran = "```python\nprint(1)\n```\n```output\n1\n```\n\\boxed{1}"
    assert drop_reason(calls("ok"), True, "correct", text=ran) is None
    # A second block closed by a single newline: the loop never stopped there, nothing ran it.
    unran = ran + "\n```python\nprint(2)\n```\nSo \\boxed{1}"
    assert drop_reason(calls("ok"), True, "correct", text=unran) == "unexecuted_code"
    assert drop_reason([], True, "correct", text="```python\nprint(2)\n```\n\\boxed{1}") == "unexecuted_code"
    assert drop_reason([], True, "correct", text="\\boxed{1}") == "no_code"


def test_error_cells_are_kept_beside_a_successful_one_unless_strict():
    assert drop_reason(calls("error", "ok"), True, "correct") is None
    assert drop_reason(calls("timeout", "ok"), True, "correct") is None
    assert drop_reason(calls("error", "ok"), True, "correct", strict_cells=True) == "failed_cell"
    assert drop_reason(calls("ok", "ok"), True, "correct", strict_cells=True) is None


@pytest.mark.parametrize("status", ["error", "timeout", "memory", "output_limit", "crashed"])
def test_code_that_never_ran_to_the_end_is_dropped(status):
    assert drop_reason(calls(status), True, "correct") == "no_successful_code"
    assert drop_reason(calls(status, status), True, "correct") == "no_successful_code"


def test_a_response_cut_at_the_token_limit_is_dropped():
    assert drop_reason(calls("ok"), False, "correct") == "truncated"


def test_the_first_failing_reason_wins():
    assert drop_reason([], False, "wrong") == "no_code"
    assert drop_reason(calls("error"), False, "wrong") == "no_successful_code"
    assert drop_reason(calls("ok"), False, "wrong") == "truncated"
    assert [r for r in FILTER_REASONS] == [
        "no_code",
        "unexecuted_code",
        "no_successful_code",
        "failed_cell",
        "truncated",
        "wrong_answer",
        "no_answer",
    ]


def test_a_python_fence_printed_by_a_cell_is_not_unexecuted_code():
    # A correct response whose cell prints a ```python fence: the fence sits inside the
    # interpreter's span, so it is output, not code the model wrote and nobody ran.
    text = "```python\nprint('`' * 3 + 'python')\n```\n```output\n```python\n```\n\\boxed{1}"
    start = text.index("```output") + len("```output")
    ran = [{"status": "ok", "span": [start, text.index("\\boxed")]}]
    assert drop_reason(ran, True, "correct", text=text) is None
    # Without the span the printed fence counts as a second, unexecuted block.
    assert drop_reason(calls("ok"), True, "correct", text=text) == "unexecuted_code"
    # A fence the model wrote outside every span still counts.
    assert drop_reason(ran, True, "correct", text=text + "\n```python\nprint(2)\n```\n") == "unexecuted_code"
