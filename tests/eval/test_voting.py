"""maj@n votes on answers the checker treats as equal; pass@k for every k asked and n;
checks that timed out are counted, still vote, and are checked again on resume."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from slowthink.config import ConfigError
from slowthink.data.problems import Problem
from slowthink.eval.metrics import SampleRecord, pass_k_values, summarize
from slowthink.eval.runner import Decoding, SampleStore, run_samples
from slowthink.eval.voting import answer_classes
from slowthink.recipes.evaluate import EvalConfig
from slowthink.rewards.checkers import make_checker
from slowthink.rewards.verdict import ExactMatchChecker, Verdict
from slowthink.rollout.generator import Completion, SamplingParams


def records(pid: str, gold: str, answers: Sequence[str | None], correct: Sequence[bool], statuses: Sequence[str] | None = None) -> list[SampleRecord]:
    statuses = statuses or ["correct" if c else ("no_answer" if a is None else "wrong") for a, c in zip(answers, correct)]
    return [
        SampleRecord(pid, i, "p", f"\\boxed{{{a}}}" if a is not None else "", 5, "stop", gold, a if s not in ("timeout", "error") else None, s, c)
        for i, (a, c, s) in enumerate(zip(answers, correct, statuses))
    ]


@pytest.fixture(scope="module")
def math_checker():
    checker = make_checker("math", workers=1)
    yield checker
    checker.close()


@pytest.mark.parametrize(
    ("gold", "answers"),
    [("\\frac{1}{2}", ["\\frac{1}{2}", "0.5", "\\dfrac{1}{2}", "3", "3"]), ("18", ["18.", "018", "18", "7", "7"])],
)
def test_majority_counts_spellings_of_one_answer_as_one_vote(math_checker, gold, answers):
    verdicts = math_checker.check([gold] * len(answers), [f"\\boxed{{{a}}}" for a in answers])
    assert [v.correct for v in verdicts] == [True, True, True, False, False]
    rows = records("q", gold, answers, [v.correct for v in verdicts])
    # Three samples hold the right answer in three spellings: the majority is right.
    assert summarize(rows, n=5, mode="sampled", checker=math_checker)["maj@5"] == 1.0
    # By raw string, "3"/"7" (two votes) would win: what the vote did before.
    assert summarize(rows, n=5, mode="sampled")["maj@5"] == 0.0


class CountingChecker(ExactMatchChecker):
    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def check(self, golds, responses):
        self.pairs += list(zip(golds, responses))
        return super().check(golds, responses)


def test_pair_verdicts_are_cached_across_problems():
    checker, cache = CountingChecker(), {}
    classes = answer_classes([["4", "4 ", "5"], ["5", "4", "4 "]], checker, cache)
    # "4" and "4 " are one answer to the exact checker (spaces stripped); "5" is another.
    assert classes[0] == {"4": "4", "4 ": "4", "5": "5"}
    assert classes[1] == {"5": "5", "4": "4", "4 ": "4"}
    # Each ordered pair checked once, in one call; the second problem's pairs came from the cache
    # except ("5", "4") and ("5", "4 "), first seen in that order there.
    assert sorted(checker.pairs) == sorted(
        [("4", "\\boxed{4 }"), ("4", "\\boxed{5}"), ("4 ", "\\boxed{5}"), ("5", "\\boxed{4}"), ("5", "\\boxed{4 }")]
    )
    answer_classes([["4", "4 ", "5"]], checker, cache)
    assert len(checker.pairs) == 5


def lighteval_maj(predictions: Sequence[str], gold: str) -> int:
    """lighteval's maj@n (metrics_sample.MajAtK.compute) with identity normalisation."""
    all_answers = [p or "" for p in predictions]
    majority = max(all_answers, key=all_answers.count)
    return 1 if majority == gold else 0


def test_agrees_with_lighteval_where_equal_answers_are_spelled_alike():
    rng = random.Random(0)
    for trial in range(300):
        n = rng.randint(1, 8)
        answers = [rng.choice("1234") for _ in range(n)]
        rows = records(f"p{trial}", "2", answers, [a == "2" for a in answers])
        ours = summarize(rows, n=n, mode="sampled", checker=ExactMatchChecker()).get(f"maj@{n}", float(answers[0] == "2"))
        assert ours == lighteval_maj(answers, "2"), answers


def test_lighteval_rule_loses_the_majority_that_spellings_split(math_checker):
    answers = ["\\frac{1}{2}", "0.5", "\\dfrac{1}{2}", "3", "3"]
    assert lighteval_maj(answers, "\\frac{1}{2}") == 0
    rows = records("q", "\\frac{1}{2}", answers, [True, True, True, False, False])
    assert summarize(rows, n=5, mode="sampled", checker=math_checker)["maj@5"] == 1.0


def test_pass_at_k_for_every_k_asked_and_n():
    assert pass_k_values(5) == [1, 2, 4, 5]
    assert pass_k_values(5, (3,)) == [1, 2, 3, 4, 5]
    rows = records("a", "1", ["1", "2", "2", "2", "2"], [True, False, False, False, False])
    s = summarize(rows, n=5, mode="sampled", ks=(3,))
    # One correct of five: pass@k = k/5.
    assert (s["pass@3"], s["pass@5"]) == (pytest.approx(0.6), 1.0)
    with pytest.raises(ValueError, match="k=6"):
        pass_k_values(5, (6,))


def test_eval_config_checks_pass_k_against_n():
    assert EvalConfig(data={"file": "x.jsonl"}, sampling={"mode": "sampled", "n": 5}, pass_k=(3,)).pass_k == (3,)
    with pytest.raises((ValueError, ConfigError), match="pass_k.*1..n = 5.*got 6"):
        EvalConfig(data={"file": "x.jsonl"}, sampling={"mode": "sampled", "n": 5}, pass_k=(6,))


def test_a_timed_out_check_is_counted_and_still_votes():
    # Sample 1's check timed out: it still votes "5" with sample 2, whose check says correct.
    rows = records("q", "5", ["4", "5", "5"], [False, False, True], ["wrong", "timeout", "correct"])
    s = summarize(rows, n=3, mode="sampled", checker=ExactMatchChecker())
    assert s["unchecked"] == 1 and s["check/timeout"] == 1
    assert s["maj@3"] == 1.0


class Echo:
    def generate(self, prompt_ids, params: SamplingParams):
        return [Completion(i, [1], [0.0], "\\boxed{5}", "stop") for i in range(len(prompt_ids)) for _ in range(params.n)]

    def update_weights(self, model):
        raise AssertionError


class TimesOutOnce(ExactMatchChecker):
    def __init__(self) -> None:
        self.calls = 0

    def check(self, golds, responses):
        self.calls += 1
        if self.calls == 1:
            return [Verdict("timeout", detail="busy") for _ in golds]
        return super().check(golds, responses)


class Chars:
    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_timed_out_checks_are_checked_again_on_resume(tmp_path):
    problems, checker = [Problem("a", "q", "5")], TimesOutOnce()
    decoding = Decoding(n=2, temperature=1.0, top_p=1.0, max_tokens=4)

    def run():
        store = SampleStore(tmp_path / "samples.jsonl")
        try:
            return run_samples(problems, Echo(), Chars(), checker, "plain", decoding, store)
        finally:
            store.close()

    assert [r.status for r in run()] == ["timeout", "timeout"]
    assert [(r.status, r.correct) for r in run()] == [("correct", True)] * 2


def test_the_table_shows_unchecked_samples():
    import io

    from rich.console import Console

    from slowthink.eval.table import print_table

    rows = records("q", "5", ["4", "5", "5"], [False, False, True], ["wrong", "timeout", "correct"])
    summary = {"benchmark": "b", **summarize(rows, n=3, mode="sampled", checker=ExactMatchChecker())}
    out = io.StringIO()
    print_table(Console(file=out, width=120), {"b": summary})
    header, row = [line for line in out.getvalue().splitlines() if "unchk" in line or line.strip().startswith("b ")]
    assert header.split()[-1] == "unchk" and row.split()[-1] == "1"
