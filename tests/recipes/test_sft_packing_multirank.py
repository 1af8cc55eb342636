"""Packed SFT (``data.packing=true``) on two gloo ranks, under DDP and FSDP2, trains as one
process does; under FSDP2 only rank 0 reads the whole model.

Before, each rank packed its own share of the batch, so the ranks made different numbers
of packed rows, hence of micro-batches: their collectives stopped pairing up and the run
hung until the timeout (with equal counts they could pair the wrong tensors instead). Now
every rank packs the whole batch the same way and takes every world-th row, empty rows
evening out the count. Every worker has a gloo timeout and the test a deadline, so a hang
fails instead of wedging CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slowthink.config import load_config
from slowthink.data.sampler import PromptSampler
from slowthink.models.modeling import load_tokenizer
from slowthink.recipes.sft import SFTConfig, load_examples, run_sft, train_sft
from slowthink.tracking import read_metrics
from slowthink.training.checkpoint import latest_checkpoint
from slowthink.training.distributed import DistInfo
from slowthink.training.packing import pack_rows
from slowthink.training.run_dir import claim_run_dir

sys.path.insert(0, str(Path(__file__).parents[1]))
from spawn_helpers import free_port, gloo_group, spawn_with_deadline  # noqa: E402

# The review's reproduction, at lr 1e-3 so that AdamW keeps float noise small (tests/training/test_fsdp.py).
PACKED = [
    "run.torch_threads=1",
    "run.progress=false",
    "data.tiny_size=64",
    "data.max_length=64",
    "data.packing=true",
    "train.batch_size=8",
    "train.micro_batch_size=1",
    "train.steps=2",
    "optim.lr=0.001",
    "optim.warmup_steps=0",
]
STRATEGIES = ("ddp", "fsdp")
TOL = dict(rtol=0, atol=2e-5)


def _config(out: Path, strategy: str = "ddp") -> SFTConfig:
    return load_config(SFTConfig, None, [f"run.output_dir={out}", *PACKED, f"distributed.strategy={strategy}"])


def _worker(rank: int, world: int, port: int, root: str, out: dict) -> None:
    import slowthink.models.modeling as modeling

    full_loads = []  # which strategies' runs read the whole model on this rank
    read_whole_model = modeling.load_model_and_tokenizer

    def counted(*args, **kwargs):
        full_loads.append(strategy)
        return read_whole_model(*args, **kwargs)

    modeling.load_model_and_tokenizer = counted
    torch.set_num_threads(1)
    # A collective that never pairs up raises after 60 s instead of waiting forever.
    with gloo_group(rank, world, port, timeout_s=60):
        info = DistInfo(rank, world)
        for strategy in STRATEGIES:
            config = _config(Path(root) / strategy, strategy)
            with claim_run_dir(config, False, info) as start:
                train_sft(config, start, info)
        out[rank] = full_loads


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(latest_checkpoint(run) / "model.safetensors")


def test_the_scenario_packs_unequal_row_counts_per_rank(tmp_path):
    # The case the fix is for: packing each rank's own half of a step's batch gives the
    # ranks different numbers of rows (the review saw [2, 3] and [3, 2]).
    config = _config(tmp_path / "unused")
    examples, _ = load_examples(config.data, load_tokenizer("tiny"), config.run.seed)
    sampler = PromptSampler(len(examples), seed=config.run.seed)
    counts = []
    for _ in range(config.train.steps):
        indices = sampler.take(config.train.batch_size)
        lengths = [len(examples[i].prompt_ids) + len(examples[i].response_ids) for i in indices]
        counts.append([len(pack_rows(lengths[:4], 64)), len(pack_rows(lengths[4:], 64))])
    assert any(a != b for a, b in counts), counts


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("two_ranks")
    out = spawn_with_deadline(
        _worker, (2, free_port(), str(root)), 300, "packed SFT on 2 ranks still running after 300 s: the ranks' collectives do not pair up"
    )
    return root, out


@pytest.mark.slow  # two 2-rank runs and one single-process run of 2 steps
def test_packed_sft_on_two_ranks_equals_one_process_under_ddp_and_fsdp(two_rank_runs, tmp_path):
    root, _ = two_rank_runs
    single = run_sft(_config(tmp_path / "one"))
    expected = _weights(single)
    losses = [row["loss"] for row in read_metrics(single / "metrics.jsonl")]
    for strategy in STRATEGIES:
        run = root / strategy
        weights = _weights(run)
        assert weights.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(weights[key], value, **TOL, msg=lambda m, key=key, strategy=strategy: f"{strategy}, {key}: {m}")
        assert [row["loss"] for row in read_metrics(run / "metrics.jsonl")] == pytest.approx(losses, abs=1e-6), strategy


@pytest.mark.slow
def test_under_fsdp_only_rank_0_reads_the_whole_model(two_rank_runs):
    # As RL does (recipes/rl_parts.py): rank 1 builds the architecture empty and fsdp fills its
    # shards from rank 0, so a node holds one full copy in host memory, not one per rank. Under
    # DDP every rank holds the whole model anyway.
    _, full_loads = two_rank_runs
    assert full_loads == {0: ["ddp", "fsdp"], 1: ["ddp"]}
