"""The benchmark summary against values computed by hand from hand-made sample records."""

from __future__ import annotations

import json

import pytest

from slowthink.eval.metrics import SampleRecord, powers_of_two, summarize


def record(pid: str, index: int, tokens: int, finish: str, extracted: str | None, correct: bool, response: str = "") -> SampleRecord:
    status = "correct" if correct else ("no_answer" if extracted is None else "wrong")
    return SampleRecord(
        problem_id=pid,
        sample_index=index,
        prompt="p",
        response=response,
        num_tokens=tokens,
        finish_reason=finish,
        gold="7",
        extracted=extracted,
        status=status,
        correct=correct,
    )


# Two problems x 4 samples.
#   a: answers 7 7 5 None -> correct 2/4; majority "7" (correct)
#   b: answers 3 3 7 None -> correct 1/4; majority "3" (wrong)
RECORDS = [
    record("a", 0, 10, "stop", "7", True, "Wait, let me verify."),
    record("a", 1, 20, "stop", "7", True, "but"),
    record("a", 2, 30, "stop", "5", False),
    record("a", 3, 100, "length", None, False, "wait wait"),
    record("b", 0, 40, "stop", "3", False),
    record("b", 1, 50, "stop", "3", False),
    record("b", 2, 60, "stop", "7", True, "Alternatively"),
    record("b", 3, 200, "length", None, False),
]


def test_lengths_of_correct_and_incorrect_responses():
    s = summarize(RECORDS, n=4, mode="sampled")
    # correct: 10, 20, 60 -> 30; incorrect: 30, 100, 40, 50, 200 -> 84; all: 510 / 8.
    assert s["response_length_correct"] == pytest.approx(30.0)
    assert s["response_length_incorrect"] == pytest.approx(84.0)
    assert s["response_length"] == pytest.approx(63.75)


def test_completion_ratio_counts_only_stop_as_finished():
    assert summarize(RECORDS, n=4, mode="sampled")["completion_ratio"] == pytest.approx(6 / 8)


def test_accuracy_pass_at_k_and_majority_vote():
    s = summarize(RECORDS, n=4, mode="sampled")
    # pass@1: mean of 2/4 and 1/4.
    assert s["pass@1"] == pytest.approx(0.375)
    # pass@2 = 1 - C(n-c,2)/C(4,2): a: 1 - 1/6, b: 1 - 3/6.
    assert s["pass@2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)
    assert s["pass@4"] == pytest.approx(1.0)
    assert s["maj@4"] == pytest.approx(0.5)
    assert "greedy_accuracy" not in s


def test_keyword_ratios_and_status_counts():
    s = summarize(RECORDS, n=4, mode="sampled")
    # "wait" in samples a0 (once) and a3 (twice): 3 occurrences over 8 responses, 2 responses of 8.
    assert s["keywords/reflection"] == pytest.approx(3 / 8)
    assert s["keywords/reflection_ratio"] == pytest.approx(2 / 8)
    assert s["keywords/verification_ratio"] == pytest.approx(1 / 8)
    assert s["keywords/alternatives_ratio"] == pytest.approx(1 / 8)
    assert (s["check/correct"], s["check/wrong"], s["check/no_answer"], s["check/timeout"]) == (3, 3, 2, 0)


def test_greedy_summary_has_no_majority_and_json_has_no_nan():
    greedy = [record("a", 0, 12, "stop", "7", True), record("b", 0, 8, "length", None, False)]
    s = summarize(greedy, n=1, mode="greedy")
    assert s["greedy_accuracy"] == s["pass@1"] == pytest.approx(0.5)
    assert not any(k.startswith("maj@") for k in s)
    all_wrong = summarize([record("a", 0, 5, "stop", "1", False)], n=1, mode="greedy")
    # No correct response: its mean length is null, not NaN (JSON has no NaN).
    assert all_wrong["response_length_correct"] is None
    json.loads(json.dumps(all_wrong, allow_nan=False))


def test_problem_with_missing_samples_is_an_error():
    with pytest.raises(ValueError, match="problem 'a' has 3 samples, expected 4"):
        summarize(RECORDS[1:], n=4, mode="sampled")


def test_powers_of_two():
    assert powers_of_two(1) == [1]
    assert powers_of_two(5) == [1, 2, 4]
    assert powers_of_two(8) == [1, 2, 4, 8]


def test_record_round_trip_and_missing_field():
    row = RECORDS[0].to_json()
    assert SampleRecord.from_json(row) == RECORDS[0]
    del row["status"]
    with pytest.raises(ValueError, match="status"):
        SampleRecord.from_json(row)
