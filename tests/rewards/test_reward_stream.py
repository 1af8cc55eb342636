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


@pytest.mark.slow  # ~2 s: a worker is frozen and killed at its 1 s deadline
def test_the_math_checker_scores_streamed_rows_and_kills_a_frozen_worker_from_the_scoring_thread():
    """The real worker pool, driven from the background thread: parts equal one call, and a
    worker that stops answering is killed at its deadline there and replaced."""
    import os
    import signal
    import time

    from slowthink.rewards.math_checker import MathChecker

    golds = ["\\frac{1}{2}", "3", "x^2", "0.5", "7"] * 4
    responses = ["\\boxed{0.5}", "\\boxed{3}", "\\boxed{x \\cdot x}", "\\boxed{1/2}", "no box"] * 4
    lengths = list(range(20))
    with MathChecker(workers=1, timeout_s=1.0) as checker:
        model = RewardModel(RewardConfig(checker="math", weights={"correctness": 1.0}), checker=checker)
        expected = model.score(golds, responses, lengths, 100)
        assert [v.status for v in expected.verdicts[:5]] == ["correct", "correct", "correct", "correct", "no_answer"]
        stream = model.stream(100)
        stream.add(list(range(0, 20, 2)), golds[0::2], responses[0::2], lengths[0::2])
        (pid,) = checker.worker_pids
        os.kill(pid, signal.SIGSTOP)  # frozen: only the parent's deadline can end its check
        stream.add(list(range(1, 20, 2)), golds[1::2], responses[1::2], lengths[1::2])
        start = time.monotonic()
        got = stream.result(golds, responses, lengths)
        assert time.monotonic() - start < 15
        timeouts = [i for i, v in enumerate(got.verdicts) if v.status == "timeout"]
        assert len(timeouts) == 1 and checker.restarts == 1 and checker.worker_pids != [pid]
        assert all(got.verdicts[i] == expected.verdicts[i] for i in range(20) if i not in timeouts)
        assert model.score(golds, responses, lengths, 100).total == expected.total  # the pool works after
        model.close()
