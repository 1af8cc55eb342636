"""Reward components of section 4.2.1, with hand-computed values."""

import pytest

from slowthink.rewards import components
from slowthink.rewards.verdict import Verdict

CORRECT, WRONG, NONE = Verdict("correct", "3"), Verdict("wrong", "4"), Verdict("no_answer")


def test_correctness_reward():
    assert components.correctness_reward(CORRECT) == 1.0
    assert components.correctness_reward(WRONG) == 0.0
    assert components.correctness_reward(NONE) == 0.0
    assert components.correctness_reward(Verdict("timeout")) == 0.0


@pytest.mark.parametrize(
    "verdict, expected",
    [(CORRECT, 1.0), (WRONG, -1.0), (NONE, -2.0), (Verdict("timeout"), -1.0), (Verdict("unparseable_gold"), -1.0)],
)
def test_still3_reward(verdict, expected):
    assert components.still3_reward(verdict) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>add them</think> <answer>3</answer>", 1.0),
        ("add them</think>\n<answer>3</answer>\n", 1.0),  # the prompt already opened <think>
        ("<think>a</think><answer>3</answer> trailing words", 0.0),
        ("<answer>3</answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("<think>a<think>b</think><answer>3</answer>", 0.0),
        ("<think>a</think><answer>3</answer><answer>4</answer>", 0.0),  # one answer only
        ("<think>a</think>b</think><answer>3</answer>", 0.0),  # one thought only
    ],
)
def test_format_reward(text, expected):
    assert components.format_reward(text) == expected


@pytest.mark.parametrize(
    "verdict, length, max_length, expected",
    [
        (CORRECT, 512, 1024, 1.5),  # 512/1024 + 1
        (WRONG, 512, 1024, -0.5),  # 512/1024 - 1
        (NONE, 256, 1024, -0.75),  # no answer is incorrect: 0.25 - 1
        (CORRECT, 4096, 1024, 2.0),  # L is capped at Lmax
        (WRONG, 0, 1024, -1.0),
    ],
)
def test_length_reward(verdict, length, max_length, expected):
    assert components.length_reward(verdict, length, max_length) == pytest.approx(expected)


def test_length_reward_rejects_bad_lengths():
    with pytest.raises(ValueError, match="max_length"):
        components.length_reward(CORRECT, 10, 0)


def test_action_reward():
    text = "Wait, but however... Alternatively, verify. But wait!"  # wait, but, however, alternatively, verify, but, wait = 7
    assert components.action_reward(CORRECT, text) == pytest.approx(7 / 20 + 1)
    assert components.action_reward(WRONG, text) == pytest.approx(7 / 20 - 1)
    assert components.action_reward(CORRECT, "wait " * 50) == pytest.approx(2.0)  # A capped at Amax = 20
    assert components.action_reward(WRONG, "no actions here", max_actions=10) == pytest.approx(-1.0)
    assert components.action_reward(CORRECT, "wait wait wait", max_actions=4) == pytest.approx(3 / 4 + 1)
    with pytest.raises(ValueError, match="Amax"):
        components.action_reward(CORRECT, "wait", max_actions=0)
