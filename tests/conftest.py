"""Test-wide settings: one torch thread per test worker (2 cores, parallel workers), a private cache."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SLOWTHINK_TORCH_THREADS", "1")

import pytest  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def shared_data() -> str:
    """../shared/data beside the checkout; tests that need it skip cleanly without it."""
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"shared data not found at {path} (only developers and CI have it)")
    return path
