"""The held-out evaluation runs on every rank, the step-0 one included.

With ``rollout.vllm.tensor_parallel_size > 1`` the ranks of one engine generate together:
an evaluation on rank 0 alone pairs its gathers with the other ranks' rollout gathers
(a deadlock, or prompts mixed across phases). Every evaluation must be entered by all ranks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from rl_helpers import tiny_rl_config  # noqa: E402
from spawn_helpers import free_port, spawn_with_deadline  # noqa: E402


def _rank(rank: int, port: int, run_dir: str, out: dict) -> None:
    from slowthink.recipes import rl

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    evaluated = []
    real = rl.run_heldout

    def recording(*args, **kwargs):
        evaluated.append(True)
        return real(*args, **kwargs)

    rl.run_heldout = recording  # counts the calls; the evaluation itself runs
    rl.run_rl(tiny_rl_config(Path(run_dir), "train.steps=1", "train.eval_every=1"))
    out[rank] = len(evaluated)


@pytest.mark.slow
def test_every_rank_runs_the_step_0_and_later_evaluations(tmp_path):
    out = spawn_with_deadline(_rank, (free_port(), str(tmp_path / "run")), 240, "2-rank RL run did not finish (a hang?)")
    assert out == {0: 2, 1: 2}  # step 0 and step 1, on both ranks
