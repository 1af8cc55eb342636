"""``RewardModel.stream``: rows scored in the background as they arrive equal one ``score`` call."""

from __future__ import annotations

import random
import threading

import pytest

from slowthink.rewards.reward import RewardConfig, RewardModel
from slowthink.rewards.verdict import ExactMatchChecker

GOLDS = [str(i % 7) for i in range(40)]
RESPONSES = [f"<think>{'hmm ' * (i % 5)}wait</think> \\boxed{{{i % 3}}}" if i % 4 else "no box here" for i in range(40)]
LENGTHS = [10 + 7 * i for i in range(40)]
WEIGHTS = {"correctness": 1.0, "format": 0.5, "length": 0.3, "action": 0.2}


class RecordingChecker(ExactMatchChecker):
    """The exact checker, noting the thread of every call (and failing on a chosen gold)."""

    def __init__(self, fail_on: str | None = None):
        self.threads: list[str] = []
        self.fail_on = fail_on

    def check(self, golds, responses):
        self.threads.append(threading.current_thread().name)
        if self.fail_on in golds:
            raise RuntimeError(f"checker failed on gold {self.fail_on}")
        return super().check(golds, responses)


def reward_model(checker=None) -> RewardModel:
    return RewardModel(RewardConfig(checker="exact", weights=WEIGHTS), checker=checker or ExactMatchChecker())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_streamed_in_any_parts_score_as_one_call(seed):
    model = reward_model(RecordingChecker())
    expected = model.score(GOLDS, RESPONSES, LENGTHS, 200)
    order = list(range(40))
    random.Random(seed).shuffle(order)
    stream = model.stream(200)
    cut = 0
    while cut < 30:  # parts of 1-6 rows in scrambled order; the last 10 rows are never added
        part = order[cut : cut + random.Random(seed + cut).randint(1, 6)][: 30 - cut]
        stream.add(part, [GOLDS[i] for i in part], [RESPONSES[i] for i in part], [LENGTHS[i] for i in part])
        cut += len(part)
    got = stream.result(GOLDS, RESPONSES, LENGTHS)
    assert got.total == expected.total and got.verdicts == expected.verdicts and got.components == expected.components
    assert len(set(expected.total)) > 3  # the rows do differ
    assert set(model.checker.threads[1:]) == {"slowthink-reward_0"}  # scored off the caller's thread
    model.close()


def test_a_row_added_twice_is_an_error_and_a_checker_error_reaches_result():
    model = reward_model(RecordingChecker(fail_on="3"))
    stream = model.stream(100)
    stream.add([0, 1], GOLDS[:2], RESPONSES[:2], LENGTHS[:2])
    with pytest.raises(ValueError, match=r"rows \[1\] were added to this reward stream twice"):
        stream.add([1, 2], GOLDS[1:3], RESPONSES[1:3], LENGTHS[1:3])
    with pytest.raises(RuntimeError, match="checker failed on gold 3"):
        stream.result(GOLDS[:5], RESPONSES[:5], LENGTHS[:5])
    model.close()
    model.close()  # idempotent


def test_every_row_is_scored_when_nothing_was_streamed():
    model = reward_model()
    got = model.stream(50).result(GOLDS, RESPONSES, LENGTHS)
    assert got.total == model.score(GOLDS, RESPONSES, LENGTHS, 50).total
    model.close()
