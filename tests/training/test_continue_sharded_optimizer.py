"""``model.optimizer_state`` from a sharded checkpoint, at another world size (2 gloo ranks).

A run saved in both formats (sharded by DCP, full by rank 0's gather) hands a new run the
same AdamW moments whichever format it continues from: the full one before the sharding
(``continue_optimizer``, resharded by ``wrap_model``), the sharded one into the shards
(``continue_sharded_optimizer``, resharded by DCP). Saved at 2 ranks and continued by 1
process, or saved by 1 process and continued at 2 FSDP ranks; the new run keeps its own
hyper-parameters and schedule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from test_fsdp import _rl_model  # noqa: E402
from test_sharded_checkpoint import _gathered, _group, _run, _save_both, _setup  # noqa: E402

from slowthink.config import ConfigError  # noqa: E402
from slowthink.training.checkpoint import resume_checkpoint  # noqa: E402

OWN = {"lr": 2e-6, "betas": (0.8, 0.95), "eps": 1e-7, "weight_decay": 0.01}  # the new run's, not the saved run's (lr 1e-3)
WARMUP = 4  # the new run's schedule: its first step at a quarter of lr


def _continue_both(rank: int, world: int, port: int, root: str, out: dict) -> None:
    """Continue each format's optimizer state at this world size; rank 0 reports both."""
    from slowthink.training.distributed import wrap_model
    from slowthink.training.optim import continue_optimizer
    from slowthink.training.sharded_checkpoint import continue_sharded_optimizer

    info, config = _setup(rank, world)
    with _group(rank, world, port):
        continued = {}
        for kind in ("full", "sharded"):
            checkpoint = resume_checkpoint(Path(root) / kind)
            model = _rl_model()
            optimizer = torch.optim.AdamW(model.parameters(), **OWN)
            continue_optimizer(optimizer, checkpoint, OWN["lr"])  # a full checkpoint's moments; nothing for a sharded one
            torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / WARMUP))
            wrap_model(model, info, config, optimizer)
            continue_sharded_optimizer(checkpoint, model, optimizer)  # a sharded checkpoint's; nothing for a full one
            continued[kind] = _gathered(model, optimizer, info)
            continued[kind + "_lr"] = optimizer.param_groups[0]["lr"]
        if info.is_main:
            out.update(continued)


@pytest.mark.slow
@pytest.mark.parametrize("save_world,load_world", [(2, 1), (1, 2)])
def test_a_sharded_checkpoints_moments_continue_at_another_world_size_as_the_full_ones(tmp_path, save_world, load_world):
    saved = _run(_save_both, save_world, tmp_path)["saved"][1]
    continued = _run(_continue_both, load_world, tmp_path)
    assert saved["state"], "the AdamW moments were saved"
    for kind in ("full", "sharded"):
        state, groups = continued[kind][1]["state"], continued[kind][1]["param_groups"]
        assert state.keys() == saved["state"].keys(), kind
        for index, moments in saved["state"].items():
            for name, value in moments.items():
                assert torch.equal(state[index][name], value), (kind, index, name)
        # This run's hyper-parameters and schedule (at its first warm-up step), not the saved run's.
        group = groups[0]
        assert (group["initial_lr"], tuple(group["betas"]), group["eps"], group["weight_decay"]) == (
            OWN["lr"],
            OWN["betas"],
            OWN["eps"],
            OWN["weight_decay"],
        ), kind
        assert continued[kind + "_lr"] == OWN["lr"] / WARMUP, kind


def test_a_sharded_checkpoint_of_another_model_is_refused_naming_the_key_and_folder(tmp_path):
    from slowthink.training.sharded_checkpoint import ShardedWriter, continue_sharded_optimizer

    info, _ = _setup(0, 1)
    model = _rl_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.arange(6).reshape(1, 6)).logits.float().mean().backward()
    optimizer.step()
    ShardedWriter(tmp_path, info, keep_last=1).save(1, model, optimizer, None, {"step": 1})
    checkpoint = resume_checkpoint(tmp_path)

    other = torch.nn.Linear(3, 3)  # another architecture: none of its parameters is in the checkpoint
    with pytest.raises(ConfigError, match=rf"model.optimizer_state: the optimizer state in {checkpoint} does not fit this model"):
        continue_sharded_optimizer(checkpoint, other, torch.optim.AdamW(other.parameters()))
