"""The pure parts of a cell: last-expression splitting and output truncation."""

import ast

import pytest

from slowthink.sandbox.capture import truncate
from slowthink.sandbox.cell import split_last_expression


def test_last_expression_is_split_off_and_not_run_twice():
    body, last = split_last_expression("x = 2\ny = x * 3\ny + 1")
    assert [type(node) for node in body.body] == [ast.Assign, ast.Assign]
    assert ast.unparse(last.body) == "y + 1"


def test_no_last_expression_when_the_cell_ends_with_a_statement():
    body, last = split_last_expression("x = 1\nfor i in range(3):\n    x += i")
    assert last is None
    assert len(body.body) == 2


def test_a_syntax_error_is_raised_for_the_cell_runner_to_report():
    with pytest.raises(SyntaxError):
        split_last_expression("def f(:\n")


def test_truncate_keeps_head_and_tail_and_says_how_much_was_cut():
    text = "a" * 10 + "b" * 80 + "c" * 10
    cut, truncated = truncate(text, 20)
    assert truncated
    assert cut == "a" * 10 + "\n...[80 characters cut]...\n" + "c" * 10
    assert truncate("short", 20) == ("short", False)
