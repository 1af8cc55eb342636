"""How long a collective waits for the slowest rank is a setting (distributed.timeout_minutes).

nccl gives up after 10 minutes by default, shorter than the waits an RL run creates (a rank
still decoding long chains of thought, rank 0 hashing a large checkpoint). Here a rank that
never arrives at a barrier fails the other after the configured time, not after a default.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from slowthink.training.distributed import DistributedConfig

sys.path.insert(0, str(Path(__file__).parents[1]))
from spawn_helpers import free_port, spawn_with_deadline  # noqa: E402

TIMEOUT_MINUTES = 0.05  # 3 s


def _rank(rank: int, port: int, out: dict) -> None:
    import torch.distributed as dist

    from slowthink.training.distributed import barrier, init_distributed

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    info = init_distributed(DistributedConfig(timeout_minutes=TIMEOUT_MINUTES))
    if rank == 1:
        time.sleep(10)  # never reaches the barrier in time
        return
    start = time.monotonic()
    try:
        barrier(info)
        out["error"] = None
    except Exception as exc:  # gloo raises a RuntimeError naming the timeout
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["waited_s"] = time.monotonic() - start
    dist.destroy_process_group()


def test_a_barrier_gives_up_after_the_configured_timeout():
    out = spawn_with_deadline(_rank, (free_port(),), 120, "the ranks did not finish")
    assert out["error"] is not None
    assert out["waited_s"] < 15  # the configured 3 s, not gloo's 30-minute default


def test_the_default_timeout_outlasts_a_long_generation():
    assert DistributedConfig().timeout_minutes >= 60
