"""``set_torch_threads``: explicit > $SLOWTHINK_TORCH_THREADS > $OMP_NUM_THREADS > cores / local ranks (issue 7 item 16)."""

from __future__ import annotations

import pytest
import torch

import slowthink.modeling as modeling
from slowthink.modeling import set_torch_threads


@pytest.fixture()
def clean_env(monkeypatch):
    for name in ("SLOWTHINK_TORCH_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(modeling, "available_cores", lambda: 8)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def test_default_takes_the_cores_up_to_eight(clean_env):
    assert set_torch_threads() == 8 and torch.get_num_threads() == 8


def test_torchrun_ranks_divide_the_cores(clean_env):
    # torchrun --nproc-per-node 2 on 8 cores: 4 threads each, not 8 each.
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")
    assert set_torch_threads() == 4 and torch.get_num_threads() == 4


def test_more_ranks_than_cores_still_get_one_thread(clean_env):
    clean_env.setenv("LOCAL_WORLD_SIZE", "16")
    assert set_torch_threads() == 1


def test_omp_num_threads_is_honoured(clean_env):
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")
    clean_env.setenv("OMP_NUM_THREADS", "1")
    assert set_torch_threads() == 1 and torch.get_num_threads() == 1


def test_slowthink_variable_and_explicit_value_win(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")
    clean_env.setenv("SLOWTHINK_TORCH_THREADS", "3")
    assert set_torch_threads() == 3
    assert set_torch_threads(2) == 2


def test_bad_thread_variable_is_a_clear_error(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        set_torch_threads()
