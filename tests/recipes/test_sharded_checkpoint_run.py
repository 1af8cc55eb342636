"""SFT under FSDP on 2 ranks with sharded, asynchronous checkpoints: resumed by 1 process it
ends where an uninterrupted run ends, and ``slowthink export`` turns its checkpoint into a
Hugging Face folder holding the weights the run trained."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file

sys.path[:0] = [str(Path(__file__).parents[1] / "training"), str(Path(__file__).parent)]
from test_fsdp import SFT, _assert_same_weights, _interrupt_after_step_2, _torchrun, _weights  # noqa: E402

from slowthink.config import load_config  # noqa: E402
from slowthink.recipes.export import export_checkpoint  # noqa: E402
from slowthink.recipes.sft import SFTConfig, run_sft  # noqa: E402
from slowthink.training.checkpoint import is_sharded_checkpoint, latest_checkpoint, load_trainer_state  # noqa: E402

SHARDED = ["distributed.checkpoint_format=sharded", "distributed.async_save=true"]


def _exported(run: Path, out: Path) -> dict[str, torch.Tensor]:
    return load_file(export_checkpoint(run, out) / "model.safetensors")


@pytest.mark.slow
def test_sharded_async_sft_on_two_ranks_resumes_on_one_process_and_exports(tmp_path):
    one = run_sft(load_config(SFTConfig, None, [f"run.output_dir={tmp_path / 'one'}", *SFT]))
    _torchrun(2, "sft", f"run.output_dir={tmp_path / 'two'}", *SFT, *SHARDED)
    two = tmp_path / "two"
    checkpoints = sorted(p.name for p in (two / "checkpoints").iterdir())
    assert checkpoints == ["latest", "step_000002", "step_000004"]  # the last async write was published
    assert all(is_sharded_checkpoint(two / "checkpoints" / name) for name in checkpoints[1:])
    assert "optimizer" not in load_trainer_state(latest_checkpoint(two))  # the moments are in the shards

    # Export: the sharded weights as one safetensors file, equal to the full-format run's.
    exported = _exported(two, tmp_path / "export")
    _assert_same_weights(exported, _weights(one))

    # Saved by 2 ranks, resumed by 1 process (still writing sharded checkpoints).
    resumed = _interrupt_after_step_2(two, tmp_path / "two_then_one")
    run_sft(load_config(SFTConfig, None, [f"run.output_dir={resumed}", *SFT, *SHARDED]), resume=True)
    assert latest_checkpoint(resumed).name == "step_000004"
    _assert_same_weights(_exported(resumed, tmp_path / "export_resumed"), _weights(one))


@pytest.mark.slow
def test_sharded_rl_on_two_ranks_keeps_the_reset_reference_and_resumes_on_one_process(tmp_path):
    """RL under FSDP: the reset reference is saved in the shards beside the policy; 1 process resumes it."""
    from rl_helpers import TINY_RL, tiny_rl_config

    from slowthink.recipes.rl import run_rl
    from slowthink.tracking import read_metrics

    run = tmp_path / "run"
    options = ["distributed.strategy=fsdp", "kl.mode=fixed", "kl.reference_reset_every=1", "model.logprob_chunk_size=8", *SHARDED]
    _torchrun(2, "rl", f"run.output_dir={run}", *TINY_RL, "train.steps=2", *options)
    checkpoint = latest_checkpoint(run)
    assert is_sharded_checkpoint(checkpoint) and load_trainer_state(checkpoint)["reference_reset_at"] == 2
    keys = dcp.FileSystemReader(str(checkpoint / "sharded")).read_metadata().state_dict_metadata
    assert any(key.startswith("reference.") for key in keys) and any(key.startswith("optimizer.") for key in keys)
    run_rl(tiny_rl_config(run, "train.steps=3", *options), resume=True)
    assert latest_checkpoint(run).name == "step_000003"
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
