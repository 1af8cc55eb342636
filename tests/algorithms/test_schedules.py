"""KL coefficient, cosine annealing, length curriculum and reference resets, by hand."""

from __future__ import annotations

import math

import pytest

from slowthink.algorithms.schedules import cosine_anneal, kl_coefficient, max_length_at, reference_reset_due


def test_cosine_anneal_values() -> None:
    assert cosine_anneal(0, 1e-3, 0.0, 100) == 1e-3
    # A quarter of the way: 1e-3 * (1 + cos(pi/4)) / 2 = 8.5355e-4.
    assert cosine_anneal(25, 1e-3, 0.0, 100) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    # Midway: (start + end) / 2, also when annealing upwards.
    assert cosine_anneal(50, 1e-3, 0.0, 100) == pytest.approx(5e-4, abs=1e-15)
    assert cosine_anneal(50, 2.0, 4.0, 100) == pytest.approx(3.0, abs=1e-12)
    assert cosine_anneal(100, 1e-3, 0.0, 100) == 0.0
    assert cosine_anneal(150, 1e-3, 0.0, 100) == 0.0
    assert cosine_anneal(10**6, 2.0, 4.0, 100) == 4.0


def test_cosine_anneal_without_steps_is_the_end_value_and_rejects_negative_steps() -> None:
    assert cosine_anneal(0, 1e-3, 2e-4, 0) == 2e-4
    assert cosine_anneal(5, 1e-3, 2e-4, -3) == 2e-4
    with pytest.raises(ValueError, match="step must be >= 0, got -1"):
        cosine_anneal(-1, 1.0, 0.0, 10)


def test_cosine_anneal_decreases_monotonically() -> None:
    values = [cosine_anneal(step, 1e-3, 0.0, 40) for step in range(45)]
    assert all(a > b for a, b in zip(values[:40], values[1:41]))
    assert values[40:] == [0.0] * 5


def test_kl_coefficient_modes() -> None:
    assert kl_coefficient("off", 3, coef=1e-3, start=1e-3, end=0.0, anneal_steps=100) == 0.0
    assert kl_coefficient("fixed", 3, coef=1e-3, start=5.0, end=0.0, anneal_steps=100) == 1e-3
    assert kl_coefficient("cosine", 0, coef=7.0, start=1e-3, end=0.0, anneal_steps=100) == 1e-3
    assert kl_coefficient("cosine", 50, coef=7.0, start=1e-3, end=0.0, anneal_steps=100) == pytest.approx(5e-4, abs=1e-15)


def test_cosine_kl_reaches_exactly_its_end_with_nothing_added_on_top() -> None:
    # The paper's released code adds the fixed coefficient to the annealed one, so with
    # coef = 1e-3 its KL stays at 1e-3 after the anneal. Ours is exactly `end`.
    for step in (100, 101, 500):
        assert kl_coefficient("cosine", step, coef=1e-3, start=1e-3, end=0.0, anneal_steps=100) == 0.0
    assert kl_coefficient("cosine", 100, coef=1e-3, start=1e-3, end=1e-4, anneal_steps=100) == 1e-4


def test_kl_coefficient_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown KL coefficient mode 'adaptive'.*'off', 'fixed', 'cosine'"):
        kl_coefficient("adaptive", 0, coef=1e-3, start=1e-3, end=0.0, anneal_steps=10)


def test_max_length_curriculum_8k_then_20k() -> None:
    schedule = [(0, 8192), (100, 20480)]
    assert [max_length_at(step, schedule) for step in (0, 1, 99, 100, 101, 10**6)] == [8192, 8192, 8192, 20480, 20480, 20480]
    three = [(0, 4096), (10, 8192), (20, 16384)]
    assert [max_length_at(step, three) for step in (9, 10, 19, 20)] == [4096, 8192, 8192, 16384]
    assert max_length_at(7, [(0, 512)]) == 512


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([], "empty"),
        ([(1, 8192)], r"must start at step 0, its first entry is \(1, 8192\)"),
        ([(0, 8192), (100, 20480), (50, 4096)], r"entry 2 \(50, 4096\): from_step must be greater than the previous entry's 100"),
        ([(0, 8192), (0, 4096)], r"entry 1 \(0, 4096\)"),
        ([(0, 0)], r"entry 0 \(0, 0\): max_tokens must be >= 1"),
    ],
)
def test_max_length_schedule_errors_name_the_entry(schedule: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        max_length_at(5, schedule)


def test_reference_reset_due() -> None:
    assert [step for step in range(0, 161) if reference_reset_due(step, 50)] == [50, 100, 150]
    assert not any(reference_reset_due(step, 0) for step in range(0, 100))
    assert reference_reset_due(1, 1) and not reference_reset_due(0, 1)
    with pytest.raises(ValueError, match="0 turns it off"):
        reference_reset_due(10, -5)
