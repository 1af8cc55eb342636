"""seed_everything: one seed fixes every global generator a run may draw from (Python, NumPy, torch)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import torch

from slowthink.training.run_setup import seed_everything


def _draws(seed: int) -> tuple[float, float, float]:
    seed_everything(SimpleNamespace(seed=seed, torch_threads=1))
    return random.random(), float(np.random.random()), float(torch.rand(()))


def test_the_same_seed_gives_the_same_draws_from_every_generator():
    first = _draws(3)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)  # whatever ran in between
    assert _draws(3) == first


def test_another_seed_moves_every_generator():
    first, other = _draws(3), _draws(4)
    assert all(a != b for a, b in zip(first, other, strict=True))
