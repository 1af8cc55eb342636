"""Right answers the checker used to judge wrong, each next to near misses that must stay wrong.

Upright constants, solution sets written with other separators, and (``fallback=True``,
evaluation only) unboxed answers in other languages, glued to CJK text, bare words, and
matrices in another bracket style.
"""

from __future__ import annotations

import pytest

from slowthink.rewards.extract import fallback_answer
from slowthink.rewards.math_checker import MathChecker


@pytest.fixture(scope="module")
def checker():
    with MathChecker(workers=1, timeout_s=5.0, fallback=True) as pool:
        yield pool


def status(checker, gold: str, response: str) -> str:
    return checker.check([gold], [response])[0].status


PAIRS = "gold, response, expected"


@pytest.mark.parametrize(
    PAIRS,
    [
        (r"\mathrm{e}^{2}", r"\boxed{e^2}", "correct"),
        (r"e^{2}", r"\boxed{\mathrm{e}^{2}}", "correct"),
        (r"2\mathrm{e}", r"\boxed{2e}", "correct"),
        (r"\pi \mathrm{e}", r"\boxed{e\pi}", "correct"),
        (r"\mathrm{e}^{\mathrm{i}\pi}", r"\boxed{e^{i\pi}}", "correct"),
        (r"\mathrm{e}", r"\boxed{e}", "correct"),
        (r"\frac{1}{\mathrm{e}}", r"\boxed{e^{-1}}", "correct"),
        (r"{\rm e}^{3}", r"\boxed{e^3}", "correct"),
        # near misses
        (r"\mathrm{e}^{2}", r"\boxed{e^3}", "wrong"),
        (r"\mathrm{e}^{2}", r"\boxed{2e}", "wrong"),
        ("2", r"\boxed{2\mathrm{e}}", "wrong"),  # read as 2 before: a false positive
        (r"\pi", r"\boxed{\pi \mathrm{e}}", "wrong"),
        (r"\frac{1}{\mathrm{e}}", r"\boxed{e}", "wrong"),
    ],
)
def test_upright_constants(checker, gold, response, expected):
    assert status(checker, gold, response) == expected


SOLUTIONS_AND = r"(x, y) = (1, 2) \quad \text{and} \quad (x, y) = (3, 4)"


@pytest.mark.parametrize(
    PAIRS,
    [
        (SOLUTIONS_AND, r"\boxed{(x,y) = (1,2); (x,y)=(3,4)}", "correct"),
        (r"(x,y) = (1,2); (x,y)=(3,4)", rf"\boxed{{{SOLUTIONS_AND}}}", "correct"),
        (SOLUTIONS_AND, r"\boxed{(x, y) = (3, 4), (x, y) = (1, 2)}", "correct"),
        (SOLUTIONS_AND, r"\boxed{(x,y)=(1,2) \text{ and } (x,y)=(3,4)}", "correct"),
        (SOLUTIONS_AND, r"\boxed{(1,2); (3,4)}", "correct"),
        # near misses
        (SOLUTIONS_AND, r"\boxed{(x,y) = (1,2); (x,y)=(3,5)}", "wrong"),
        (SOLUTIONS_AND, r"\boxed{(x,y) = (1,2)}", "wrong"),
        (SOLUTIONS_AND, r"\boxed{(x,y) = (1,2); (x,y)=(3,4); (x,y)=(5,6)}", "wrong"),
        (SOLUTIONS_AND, r"\boxed{(x,y) = (2,1); (x,y)=(4,3)}", "wrong"),
        ("4", rf"\boxed{{{SOLUTIONS_AND}}}", "wrong"),  # read as 4 before: a false positive
    ],
)
def test_one_solution_set_with_other_separators(checker, gold, response, expected):
    assert status(checker, gold, response) == expected


@pytest.mark.parametrize(
    PAIRS,
    [
        ("12", "所以答案是12。", "correct"),
        ("12", "答案：12", "correct"),
        ("12", "最终答案为 12", "correct"),
        ("12", "Réponse : 12. Nous avons utilisé 3 étapes.", "correct"),
        ("12", "La réponse finale est 12, obtenue en 3 étapes.", "correct"),
        ("12", "Antwort: 12 (nach 3 Schritten)", "correct"),
        ("12", "Respuesta: 12, en 3 pasos", "correct"),
        ("12", "Ответ: 12, за 3 шага", "correct"),
        ("odd", "odd", "correct"),
        (r"\text{odd}", "Odd.", "correct"),
        (r"\text{no solution}", "no solution", "correct"),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", "correct"),
        (r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}", r"$\begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}$", "correct"),
        # near misses
        ("12", "所以答案是13。", "wrong"),
        ("12", "Réponse : 13. Nous avons utilisé 12 étapes.", "wrong"),
        ("12", "Ответ: 13, за 12 шагов", "wrong"),
        ("odd", "even", "wrong"),
        ("odd", "dod", "wrong"),
        ("odd", "odds", "wrong"),
        (r"\text{odd}", "odd or even", "wrong"),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{bmatrix} 2 \\ 1 \end{bmatrix}", "wrong"),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{bmatrix} 1 & 2 \end{bmatrix}", "wrong"),
    ],
)
def test_fallback_reads_unboxed_answers_in_more_forms(checker, gold, response, expected):
    assert status(checker, gold, response) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("所以答案是12。", "12"),
        ("共有7个，所以是12个", "12"),  # the last number, though glued to CJK characters
        ("Réponse : 5. Nous avons utilisé 3 étapes.", "5"),
        ("La réponse est 5, en 3 étapes.", "5"),
        ("答え：5（3ステップ）", "5"),
        ("odd", "odd"),
        ("Neither.", "Neither"),
        (r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}"),
        # still none: a sentence is not a bare word answer, a digit glued to Latin letters is no number
        ("I could not solve this problem in time", None),
        ("AZYUK2A", None),
    ],
)
def test_fallback_extraction(text, expected):
    assert fallback_answer(text) == expected


def test_a_box_still_wins_and_rewards_never_use_the_fallback():
    with MathChecker(workers=1, timeout_s=5.0) as strict:
        assert strict.check(["odd", "12"], ["odd", "答案：12"])[0].status == "no_answer"
    with MathChecker(workers=1, timeout_s=5.0, fallback=True) as lenient:
        assert lenient.check(["12"], [r"答案：12, \boxed{13}"])[0].status == "wrong"
