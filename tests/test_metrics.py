"""rollout_metrics on a hand-made batch: accuracy, lengths, completion ratio, keywords, statuses."""

from __future__ import annotations

import math

import pytest

from slowthink.monitors.metrics import rollout_metrics
from slowthink.rewards.verdict import STATUSES, Verdict

TEXTS = [
    "Wait, let me verify. But actually it is 3.",  # wait | verify | but, actually
    "The answer is 4.",  # nothing
    "Hmm, wait. Alternatively, instead...",  # hmm, wait | alternatively, instead
    "",
]
LENGTHS = [10, 4, 20, 7]
FINISHED = [True, True, False, True]
VERDICTS = [Verdict("correct", "3"), Verdict("wrong", "4"), Verdict("no_answer"), Verdict("correct", "5")]


@pytest.fixture(scope="module")
def metrics():
    return rollout_metrics(TEXTS, LENGTHS, FINISHED, VERDICTS)


def test_accuracy_lengths_and_completion_ratio(metrics):
    assert metrics["accuracy"] == 0.5
    assert metrics["response_length"] == 41 / 4
    assert metrics["response_length_correct"] == (10 + 7) / 2
    assert metrics["response_length_incorrect"] == (4 + 20) / 2  # no_answer counts as incorrect
    assert metrics["completion_ratio"] == 0.75


def test_keyword_frequency_and_share_per_category(metrics):
    # Per response: reflection [1, 0, 2, 0], verification [1, 0, 0, 0],
    # correction [2, 0, 0, 0], alternatives [0, 0, 2, 0].
    assert metrics["keywords/reflection"] == 0.75 and metrics["keywords/reflection_ratio"] == 0.5
    assert metrics["keywords/verification"] == 0.25 and metrics["keywords/verification_ratio"] == 0.25
    assert metrics["keywords/correction"] == 0.5 and metrics["keywords/correction_ratio"] == 0.25
    assert metrics["keywords/alternatives"] == 0.5 and metrics["keywords/alternatives_ratio"] == 0.25


def test_checker_status_counts(metrics):
    assert {s: metrics[f"check/{s}"] for s in STATUSES} == {
        "correct": 2.0,
        "wrong": 1.0,
        "no_answer": 1.0,
        "unparseable_gold": 0.0,
        "timeout": 0.0,
        "error": 0.0,
    }


def test_lengths_of_an_empty_side_are_nan_not_zero():
    metrics = rollout_metrics(["a", "b"], [3, 5], [False, False], [Verdict("wrong", "1"), Verdict("timeout")])
    assert metrics["accuracy"] == 0.0 and metrics["completion_ratio"] == 0.0
    assert math.isnan(metrics["response_length_correct"])
    assert metrics["response_length_incorrect"] == 4.0
    assert metrics["check/timeout"] == 1.0


def test_keywords_are_whole_words_and_case_insensitive():
    metrics = rollout_metrics(["BUT butter; Waiting, WAIT"], [1], [True], [Verdict("correct", "1")])
    assert metrics["keywords/correction"] == 1.0  # "BUT", not "butter"
    assert metrics["keywords/reflection"] == 1.0  # "WAIT", not "Waiting"


def test_mismatched_inputs_are_an_error():
    with pytest.raises(ValueError, match="got 2 texts, 1 lengths, 2 finished flags, 2 verdicts"):
        rollout_metrics(["a", "b"], [3], [True, True], [Verdict("correct", "1"), Verdict("wrong", "2")])
