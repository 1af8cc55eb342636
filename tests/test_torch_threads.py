"""``set_torch_threads``: explicit > $SLOWTHINK_TORCH_THREADS > $OMP_NUM_THREADS > cores / local ranks."""

from __future__ import annotations

import pytest
import torch

import slowthink.models.modeling as modeling
from slowthink.models.modeling import set_torch_threads


@pytest.fixture()
def clean_env(monkeypatch):
    for name in ("SLOWTHINK_TORCH_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(modeling, "available_cores", lambda: 8)
    monkeypatch.setattr(modeling, "other_busy_cores", lambda: 0.0)  # a quiet machine
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


def test_cores_other_processes_keep_busy_are_left_to_them(clean_env):
    # Two threads beside one busy process ran 4x slower than one thread.
    clean_env.setattr(modeling, "available_cores", lambda: 2)
    clean_env.setattr(modeling, "other_busy_cores", lambda: 1.1)
    assert set_torch_threads() == 1
    clean_env.setattr(modeling, "other_busy_cores", lambda: 5.0)  # never below one thread
    assert set_torch_threads() == 1


def test_other_busy_cores_sees_a_busy_process():
    import subprocess
    import sys

    quiet = modeling.other_busy_cores(0.3)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        busy = modeling.other_busy_cores(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.5 and busy > quiet - 0.5  # the spinner's core shows, on a shared machine too


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_cli_makes_openmp_threads_sleep_unless_told_otherwise(preset, expected):
    # Spinning OpenMP threads beside one busy process made a step 4x slower than sleeping ones.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = "import slowthink.cli, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [expected, "False"]  # set before torch is loaded
