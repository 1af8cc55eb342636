"""Prefix injection by hand: where a thought splits, where it is cut, what the teacher continues from."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from slowthink.tir.inject import (
    INJECTION_PREFIXES,
    SPLIT_WORDS,
    close_code,
    cut_index,
    splice,
    split_points,
    split_thought,
)

THOUGHT = "<think>So x = 2. Wait, check it. Hmm, fine. But then y = 3.\nAlternatively, guess.</think>\\boxed{5}"


def test_a_thought_splits_at_the_start_of_each_word_which_stays_with_its_piece():
    assert split_thought(THOUGHT) == [
        "<think>So x = 2. ",
        "Wait, check it. ",
        "Hmm, fine. ",
        "But then y = 3.\n",
        "Alternatively, guess.</think>\\boxed{5}",
    ]


@pytest.mark.parametrize("word", SPLIT_WORDS)
def test_every_split_word_splits(word):
    assert split_thought(f"First. {word}, second.") == ["First. ", f"{word}, second."]


@pytest.mark.parametrize(
    "text",
    [
        "I think but maybe not.",  # lower case: mid-sentence, not a new step
        "WAIT, HMM, BUT: shouting is not a step.",
        "Butter and Waiting and Hmmm and Moreoverall.",  # a word inside a longer word
        "ABut xWait _But But_",  # glued to letters, digits or underscores
        "No reasoning words at all.",
    ],
)
def test_words_that_must_not_split(text):
    assert split_thought(text) == [text]


def test_punctuation_and_newlines_are_word_boundaries():
    assert split_points("(But) x\nWait\tHmm.Moreover") == [1, 8, 13, 17]


def test_nothing_after_the_end_of_thought_and_nothing_before_start_splits():
    text = "<think>a. Wait, b.</think> But the answer. Hmm."
    assert split_thought(text) == ["<think>a. ", "Wait, b.</think> But the answer. Hmm."]
    # Without the marker the whole text is thought.
    assert len(split_thought(text, end_marker="")) == 4
    # Points before ``start`` (text fixed by an earlier injection) do not count; one at it does.
    assert split_thought("Wait a. But b. Hmm c.", start=9) == ["Wait a. But b. ", "Hmm c."]
    assert split_thought("Wait a. But b. Hmm c.", start=8) == ["Wait a. ", "But b. ", "Hmm c."]
    # A start inside a word still sees the letter before it: no split there.
    assert split_points("xBut y", start=1) == []


def test_nothing_at_or_after_a_code_fence_the_teacher_wrote_itself_splits():
    text = "a. Wait, b. ```python\nprint(1)\n```\nBut c. Hmm d."
    assert split_thought(text) == ["a. ", "Wait, b. ```python\nprint(1)\n```\nBut c. Hmm d."]
    # After the block (an earlier injection's start), the rest of the thought splits again.
    assert split_thought(text, start=text.index("```\n") + 4) == [text[: text.index("But")], "But c. ", "Hmm d."]


def test_a_word_at_the_very_start_or_an_empty_text_makes_no_empty_piece():
    assert split_thought("Wait, then.") == ["Wait, then."]
    assert split_thought("") == [""]


@pytest.mark.parametrize("text", [THOUGHT, "", "Wait. But. Hmm.", "x But y But z"])
def test_pieces_join_back_to_the_text(text):
    assert "".join(split_thought(text)) == text


@pytest.mark.parametrize("n, allowed", [(2, {1}), (3, {1, 2}), (4, {2, 3}), (6, {2, 3, 4, 5}), (7, {3, 4, 5, 6})])
def test_the_cut_keeps_at_least_a_third_and_drops_at_least_one(n, allowed):
    rng = random.Random(0)
    drawn = Counter(cut_index(n, rng) for _ in range(400))
    assert set(drawn) == allowed  # every allowed index comes up, nothing else
    assert min(allowed) == max(1, math.ceil(n / 3)) and max(allowed) == n - 1


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_pieces_have_no_cut(n):
    assert cut_index(n, random.Random(0)) is None


def test_the_cut_is_deterministic_for_a_seed():
    first = [cut_index(9, random.Random(7)) for _ in range(3)]
    assert first == [cut_index(9, random.Random(7)) for _ in range(3)]
    assert [cut_index(9, random.Random(s)) for s in range(20)] != [cut_index(9, random.Random(7))] * 20


def test_splice_keeps_the_pieces_before_the_cut_then_the_prefix_and_an_open_fence():
    pieces = split_thought(THOUGHT)
    text = splice(pieces, 2, INJECTION_PREFIXES[0])
    assert text == ("<think>So x = 2. Wait, check it. Wait a minute, maybe I could use some code to double-check my reasoning.\n```python\n")
    with pytest.raises(ValueError, match="cut 0 must keep at least one of 5 pieces"):
        splice(pieces, 0, INJECTION_PREFIXES[0])
    with pytest.raises(ValueError, match="cut 5 must keep"):
        splice(pieces, 5, INJECTION_PREFIXES[0])


def test_the_prefixes_are_several_and_the_papers_is_first():
    assert 4 <= len(INJECTION_PREFIXES) <= 5 and len(set(INJECTION_PREFIXES)) == len(INJECTION_PREFIXES)
    assert INJECTION_PREFIXES[0] == "Wait a minute, maybe I could use some code to double-check my reasoning."


def test_code_ends_at_the_first_closing_fence():
    assert close_code("x = 1\nprint(x)\n```") == "x = 1\nprint(x)\n"
    assert close_code("print(1)\n```python\nmore") == "print(1)\n"
    assert close_code("print(1)\n") is None  # never closed: cut by the limit or EOS
    assert close_code("  \n```") is None  # nothing to run
