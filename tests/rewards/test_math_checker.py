"""MathChecker: statuses, the strict rules, hostile answers under the deadline, and pool recovery.

The pool is shared by the module (starting workers costs a fork each) with a 2 s timeout
to keep the suite fast; the deadline guarantee is timeout + KILL_GRACE_S < timeout + 1 s.
"""

import os
import signal
import threading
import time

import pytest

from slowthink.rewards.math_checker import MathChecker

TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def checker():
    with MathChecker(workers=2, timeout_s=TIMEOUT_S) as pool:
        yield pool


def statuses(checker, pairs):
    return [v.status for v in checker.check([g for g, _ in pairs], [r for _, r in pairs])]


def assert_pool_works(checker):
    assert statuses(checker, [("3", r"\boxed{3}"), (r"\frac{1}{2}", r"\boxed{0.5}")]) == ["correct", "correct"]


@pytest.mark.parametrize(
    "gold, response",
    [
        ("3", r"\boxed{3}"),
        (r"\frac{1}{2}", r"The answer is \boxed{\dfrac{2}{4}}."),
        (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{(3, \pi/2)}"),
        (r"2\sqrt{2}", r"\boxed{\sqrt{8}}"),
        ("28\\%", r"\boxed{28}"),
        ("3", "<think>easy</think> <answer>3</answer>"),  # math-verify alone misses this
        ("7425000", r"\boxed{7,425,000}"),
        ("[0, 1)", r"\boxed{[0,1)}"),
        ("x = 5", r"\boxed{5}"),
    ],
)
def test_correct(checker, gold, response):
    assert statuses(checker, [(gold, response)]) == ["correct"]


@pytest.mark.parametrize(
    "gold, response",
    [
        ("3", r"\boxed{4}"),
        (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}"),
        ("[0, 1)", r"\boxed{(0,1]}"),
        ("3", r"\boxed{\text{banana}}"),
    ],
)
def test_wrong(checker, gold, response):
    assert statuses(checker, [(gold, response)]) == ["wrong"]


@pytest.mark.parametrize("hedge", ["3 or 4", "3, 4", r"3 \text{ or } 4", r"4 \lor 3", r"3 \pm 1", r"x = 3 \text{ or } x = 4"])
def test_hedged_answer_is_wrong(checker, hedge):
    verdict = checker.check(["3"], [rf"\boxed{{{hedge}}}"])[0]
    assert verdict.status == "wrong"


def test_hedge_rule_keeps_multi_valued_golds(checker):
    assert statuses(checker, [(r"3, 4", r"\boxed{4, 3}"), (r"1 \pm \sqrt{19}", r"\boxed{1+\sqrt{19}, 1-\sqrt{19}}")]) == [
        "correct",
        "correct",
    ]


def test_last_final_answer_counts(checker):
    pairs = [("3", r"\boxed{4} hmm, wait, that is wrong: \boxed{3}"), ("4", r"\boxed{4} hmm, wait: \boxed{3}")]
    assert statuses(checker, pairs) == ["correct", "wrong"]


@pytest.mark.parametrize(
    "gold, response, expected",
    [
        (r"\frac{1}{3}", r"\boxed{0.33}", "wrong"),
        (r"\frac{1}{3}", r"\boxed{0.333333}", "wrong"),  # math-verify's 6-decimal rounding says equal
        (r"\frac{1}{2}", r"\boxed{0.5}", "correct"),
        ("0.5", r"\boxed{\frac{1}{2}}", "correct"),
        (r"\frac{1}{12}", r"\boxed{0.0833333333333333}", "correct"),  # equal to float precision
        (r"\sqrt{2}", r"\boxed{1.414}", "wrong"),
    ],
)
def test_decimal_equals_fraction_only_when_exact(checker, gold, response, expected):
    assert statuses(checker, [(gold, response)]) == [expected]


@pytest.mark.parametrize(
    "gold, response, expected",
    [
        ("0.0000001", r"\boxed{0.0000002}", "wrong"),  # both round to 0 at 6 decimals in math-verify
        ("1e-7", r"\boxed{2e-7}", "wrong"),
        ("1e-7", r"\boxed{10^{-7}}", "correct"),
        (r"1 \times 10^{-7}", r"\boxed{0.0000001}", "correct"),
        (r"2 \times 10^{-12}", r"\boxed{2.0000001 \times 10^{-12}}", "wrong"),
    ],
)
def test_tiny_numbers_compare_relatively(checker, gold, response, expected):
    assert statuses(checker, [(gold, response)]) == [expected]


@pytest.mark.parametrize(
    "gold, response, expected",
    [
        # Integers compare exactly, however large: off by one is wrong (a relative 1e-9 would pass it).
        ("123456789012", r"\boxed{123456789013}", "wrong"),
        ("123456789012", r"\boxed{123456789012}", "correct"),
        ("10^{12}", r"\boxed{1000000000001}", "wrong"),
        ("10^{12}", r"\boxed{1000000000000}", "correct"),
        ("1000000000000", r"\boxed{10^{12}}", "correct"),
        (r"2^{64}", r"\boxed{18446744073709551617}", "wrong"),
        (r"2^{64}", r"\boxed{18446744073709551616}", "correct"),
        (r"\binom{40}{20}", r"\boxed{137846528821}", "wrong"),
        (r"\binom{40}{20}", r"\boxed{137846528820}", "correct"),
        ("1000000000000", r"\boxed{1 \times 10^{12}}", "correct"),
        ("1000000000001", r"\boxed{1 \times 10^{12}}", "wrong"),
        # A decimal that happens to be an integer is compared exactly too.
        ("123456789012", r"\boxed{123456789013.0}", "wrong"),
        ("123456789012", r"\boxed{123456789012.0}", "correct"),
        ("1200000", r"\boxed{1.2 \times 10^{6}}", "correct"),  # the decimal as written, not its binary float
        ("3", r"\boxed{2.9999999999}", "wrong"),  # within 1e-9 relative, but 3 is an integer
        ("3", r"\boxed{\frac{\ln 8}{\ln 2}}", "correct"),  # a constant equal to an integer
        ("3", r"\boxed{\frac{\ln 9}{\ln 2}}", "wrong"),
        # Non-integer decimals keep the relative tolerance.
        (r"\frac{1}{12}", r"\boxed{0.0833333333333333}", "correct"),
        ("123456789012.5", r"\boxed{123456789012.5}", "correct"),
    ],
)
def test_integers_compare_exactly(checker, gold, response, expected):
    assert statuses(checker, [(gold, response)]) == [expected]


def test_statuses_no_answer_and_unparseable_gold(checker):
    verdicts = checker.check(["3", r"\frac{", "3"], ["I think it is 3", r"\boxed{3}", ""])
    assert [v.status for v in verdicts] == ["no_answer", "unparseable_gold", "no_answer"]
    assert "gold" in verdicts[1].detail


def test_verdicts_keep_order_and_extracted_answer(checker):
    golds = ["1", "2", "1", "3", "2"]
    responses = [r"\boxed{1}", r"\boxed{5}", r"\boxed{1}", "none", r"\boxed{2}"]
    verdicts = checker.check(golds, responses)
    assert [v.status for v in verdicts] == ["correct", "wrong", "correct", "no_answer", "correct"]
    assert [v.extracted for v in verdicts] == ["1", "5", "1", None, "2"]
    assert checker.check([], []) == []


def test_mismatched_lengths_raise(checker):
    with pytest.raises(ValueError, match="2 golds but 1 responses"):
        checker.check(["1", "2"], ["x"])


HOSTILE = {
    "power tower": r"\boxed{9^{9^{9}}}",
    "huge factorial": r"\boxed{(10^{10})!}",
    "10k nested braces": r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "2M-digit number": r"\boxed{" + "7" * 2_000_000 + "}",
    "1 MB of prose": "Let us think about it. " * 45_000,
    "deep fraction": r"\boxed{" + r"\frac{1}{" * 45 + "2" + "}" * 45 + "}",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_answer_gets_a_status_in_time_and_pool_survives(checker, name):
    start = time.monotonic()
    verdict = checker.check(["3"], [HOSTILE[name]])[0]
    assert time.monotonic() - start < TIMEOUT_S + 1.0
    assert verdict.status in ("wrong", "no_answer", "timeout")
    assert_pool_works(checker)


def test_frozen_worker_is_killed_at_the_deadline_and_replaced():
    # A SIGSTOPped worker ignores its own alarm, like C code that never returns to Python:
    # only the parent's deadline can end the check.
    with MathChecker(workers=1, timeout_s=1.0) as pool:
        assert_pool_works(pool)
        (pid,) = pool.worker_pids
        os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        verdict = pool.check(["3"], [r"\boxed{3}"])[0]
        assert time.monotonic() - start < 2.0
        assert verdict.status == "timeout" and "killed" in verdict.detail
        assert pool.restarts == 1 and pool.worker_pids != [pid]
        assert_pool_works(pool)


def test_worker_dying_mid_check_is_an_error_not_a_crash():
    with MathChecker(workers=1, timeout_s=5.0) as pool:
        assert_pool_works(pool)
        (pid,) = pool.worker_pids
        threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
        verdict = pool.check(["3"], [r"\boxed{9^{9^{9}}}"])[0]
        assert verdict.status == "error" and "died" in verdict.detail
        assert_pool_works(pool)


def test_closed_checker_refuses_work():
    pool = MathChecker(workers=1, timeout_s=1.0)
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        pool.check(["1"], [r"\boxed{1}"])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="workers"):
        MathChecker(workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        MathChecker(timeout_s=0)


def test_fallback_mode_reads_unboxed_answers():
    with MathChecker(workers=1, timeout_s=2.0, fallback=True) as pool:
        pairs = [("12", "Final Answer: The final answer is $12$. I hope it is correct."), ("3", r"\boxed{4} but the answer is 3")]
        # A box still wins over the fallback phrases.
        assert statuses(pool, pairs) == ["correct", "wrong"]


@pytest.mark.parametrize(
    "gold, response, expected",
    [
        ("28\\%", r"\boxed{28}", "correct"),
        ("28\\%", r"\boxed{0.28}", "correct"),
        ("28", r"\boxed{28\%}", "correct"),
        ("28\\%", r"\boxed{27}", "wrong"),
    ],
)
def test_percentages(checker, gold, response, expected):
    assert statuses(checker, [(gold, response)]) == [expected]


class _Interrupt(BaseException):
    pass


def test_interrupted_check_leaves_no_stale_reply():
    def interrupt(signum, frame):
        raise _Interrupt()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with MathChecker(workers=2, timeout_s=2.0) as pool:
            assert_pool_works(pool)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(_Interrupt):
                pool.check(["3"], [r"\boxed{9^{9^{9}}}"])  # busy for 2 s; interrupted after 0.3 s
            # The next batch must neither wait for nor receive the interrupted check's reply.
            start = time.monotonic()
            assert pool.check(["5"], [r"\boxed{4}"])[0].status == "wrong"
            assert time.monotonic() - start < 1.0
            assert_pool_works(pool)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
