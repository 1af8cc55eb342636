"""PromptSampler: seeded, every index once per epoch, and resumable from ``state()``."""

from __future__ import annotations

import pytest

from slowthink.data.sampler import PromptSampler


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = PromptSampler(50, seed=3).take(120)
    b = PromptSampler(50, seed=3).take(120)
    c = PromptSampler(50, seed=4).take(120)
    assert a == b
    assert a != c


def test_every_index_once_per_epoch_across_odd_chunks():
    sampler = PromptSampler(10, seed=0)
    drawn: list[int] = []
    for count in (3, 4, 7, 1, 5):  # 20 = two whole epochs, chunks straddling the boundary
        drawn.extend(sampler.take(count))
    assert sorted(drawn[:10]) == list(range(10))
    assert sorted(drawn[10:]) == list(range(10))
    # A fresh order each epoch.
    assert drawn[:10] != drawn[10:]
    # The next epoch starts lazily, on the next take.
    assert sampler.state() == {"epoch": 1, "position": 10}


def test_take_more_than_one_epoch_at_once():
    sampler = PromptSampler(4, seed=1)
    drawn = sampler.take(10)
    assert len(drawn) == 10
    assert sorted(drawn[:4]) == sorted(drawn[4:8]) == [0, 1, 2, 3]
    assert sampler.state() == {"epoch": 2, "position": 2}
    assert sampler.take(0) == [] and sampler.state() == {"epoch": 2, "position": 2}


def test_resume_from_state_continues_identically():
    reference = PromptSampler(13, seed=7)
    expected = reference.take(9) + reference.take(11) + reference.take(20)

    first = PromptSampler(13, seed=7)
    head = first.take(9) + first.take(11)
    state = first.state()
    assert state == {"epoch": 1, "position": 7}
    resumed = PromptSampler(13, seed=7)
    resumed.load_state(dict(state))
    assert head + resumed.take(20) == expected


def test_empty_pool_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="empty pool"):
        PromptSampler(0, seed=0)
