"""FSDP2 on 2 gloo ranks: the same training as 1 process, and checkpoints that resume at another world size.

Tolerance: the reduce-scatter sums the two ranks' gradients in another order than one
process's backward does, so values differ by float32 rounding (~1e-7); AdamW then
normalises every gradient element, and a few steps at lr 1e-3 keep the weights within
2e-5 of the single-process run (measured 6e-7 for SFT). Every multi-process run is bounded by a
timeout and killed, so a hang fails the test instead of wedging CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from slowthink.config import load_config
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.training.checkpoint import latest_checkpoint, load_trainer_state

sys.path.insert(0, str(Path(__file__).parents[1]))
from spawn_helpers import gloo_group  # noqa: E402

TIMEOUT_S = 240
TOL = dict(rtol=0, atol=2e-5)
SFT = [
    "run.torch_threads=1",
    "run.progress=false",
    "data.tiny_size=64",
    "train.batch_size=8",
    "train.micro_batch_size=2",
    "optim.warmup_steps=0",
    "optim.lr=0.001",
    "train.steps=4",
    "train.save_every=2",
    "train.keep_checkpoints=2",
    "distributed.strategy=fsdp",
    "model.logprob_chunk_size=16",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(world: int, *args: str) -> str:
    """``torchrun --nproc-per-node world -m slowthink.cli ARGS``, killed (whole process group) after TIMEOUT_S."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc-per-node", str(world), "--master-port", str(_free_port()), "-m", "slowthink.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SLOWTHINK_TORCH_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{world}-rank run did not finish in {TIMEOUT_S} s (a hang in a collective?)")
    assert proc.returncode == 0, err[-3000:]
    return out


def _weights(run: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    checkpoint = latest_checkpoint(run) if step is None else run / "checkpoints" / f"step_{step:06d}"
    return load_file(checkpoint / "model.safetensors")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **TOL, msg=key)


def _interrupt_after_step_2(run: Path, copy_to: Path) -> Path:
    """The same run as if it had died after its step-2 checkpoint (same schedule horizon)."""
    shutil.copytree(run, copy_to)
    shutil.rmtree(copy_to / "checkpoints" / "step_000004")
    (copy_to / "checkpoints" / "latest").write_text("step_000002")
    return copy_to


@pytest.mark.slow
def test_fsdp_sft_on_two_ranks_equals_one_process_and_resumes_across_world_sizes(tmp_path):
    one = run_sft(load_config(SFTConfig, None, [f"run.output_dir={tmp_path / 'one'}", *SFT]))
    _torchrun(2, "sft", f"run.output_dir={tmp_path / 'two'}", *SFT)
    two = tmp_path / "two"
    # 1. Two sharded ranks train as one process does: weights and (gathered) AdamW moments.
    _assert_same_weights(_weights(one), _weights(two))
    moments_one, moments_two = (load_trainer_state(latest_checkpoint(r))["optimizer"] for r in (one, two))
    assert moments_two["param_groups"][0]["params"] == moments_one["param_groups"][0]["params"]
    for index, state in moments_one["state"].items():
        torch.testing.assert_close(moments_two["state"][index]["exp_avg"], state["exp_avg"], rtol=0, atol=1e-6)
    assert not torch.equal(_weights(one, 2)["model.norm.weight"], _weights(one)["model.norm.weight"])  # training moved them

    # 2. Saved by 2 ranks, resumed by 1 process.
    resumed_on_one = _interrupt_after_step_2(two, tmp_path / "two_then_one")
    run_sft(load_config(SFTConfig, None, [f"run.output_dir={resumed_on_one}", *SFT]), resume=True)
    _assert_same_weights(_weights(resumed_on_one), _weights(one))

    # 3. Saved by 1 process, resumed by 2 ranks (the optimizer state is resharded).
    resumed_on_two = _interrupt_after_step_2(one, tmp_path / "one_then_two")
    _torchrun(2, "sft", f"run.output_dir={resumed_on_two}", *SFT, "--resume")
    assert latest_checkpoint(resumed_on_two).name == "step_000004"
    _assert_same_weights(_weights(resumed_on_two), _weights(one))


# The RL update: update_policy on an FSDP-sharded model equals one process on the whole batch.


def _spawn(worker, world: int, *args) -> None:
    """mp.spawn with a deadline: the ranks are killed and the test fails if they hang."""
    context = mp.start_processes(worker, args=(world, _free_port(), *args), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{world} ranks did not finish in {TIMEOUT_S} s (a hang in a collective?)")


def _rl_update(model, batch, info, row_ranks=None, **distributed):
    from slowthink.training.optim import OptimConfig, build_scheduler
    from slowthink.training.policy_update import LossSettings, update_policy

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = build_scheduler(optimizer, OptimConfig(lr=1e-3), total_steps=10)
    settings = LossSettings(
        clip_low=0.2,
        clip_high=0.28,
        aggregation="token_mean",
        max_length=16,
        kl_coef=0.1,
        kl_estimator="k3",
        entropy_coef=0.01,
        temperature=0.8,
        old_is_current=False,
        has_reference=True,
    )
    from slowthink.training.distributed import DistributedConfig, wrap_model

    wrapped = wrap_model(model, info, DistributedConfig(strategy="fsdp", **distributed), optimizer)
    # Two mini-batches, two epochs: four optimizer steps, off-policy after the first.
    return update_policy(
        wrapped,
        optimizer,
        scheduler,
        batch,
        settings,
        num_minibatches=2,
        epochs=2,
        micro_batch_size=2,
        grad_clip=1.0,
        info=info,
        row_ranks_K=row_ranks,
    )


def _rl_batch():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_policy_update import _batch

    batch = _batch(rows=8)
    generator = torch.Generator().manual_seed(3)
    return batch.with_(old_logprobs_BT=batch.ref_logprobs_BT + 0.1 * torch.randn(batch.ref_logprobs_BT.shape, generator=generator))


def _rl_model():
    from slowthink.models.modeling import MemoryPlan, set_memory_plan
    from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer

    model = build_model(build_tokenizer(), TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), seed=0)
    return set_memory_plan(model, MemoryPlan(logprob_chunk_size=8, gradient_checkpointing=True))


def _rl_worker(rank: int, world: int, port: int, out: dict, distributed: dict) -> None:

    from slowthink.training.distributed import DistInfo, full_weights

    torch.set_num_threads(1)
    with gloo_group(rank, world, port):
        batch, model = _rl_batch(), _rl_model()
        # Rows 0-3 on rank 0, 4-7 on rank 1: the global order is rank 0's rows, then rank 1's.
        row_ranks = torch.tensor([0] * 4 + [1] * 4)
        _rl_update(model, batch.select(slice(rank * 4, rank * 4 + 4)), DistInfo(rank, world), row_ranks, **distributed)
        weights = full_weights(model)
        if rank == 0:
            out["weights"] = {k: v.clone() for k, v in weights.items()}


@pytest.mark.slow
def test_fsdp_rl_update_on_two_ranks_equals_one_process():
    from slowthink.training.distributed import DistInfo

    single, initial = _rl_model(), _rl_model().state_dict()
    metrics = _rl_update(single, _rl_batch(), DistInfo())
    assert metrics["optimizer_steps"] == 4
    assert not torch.equal(single.state_dict()["model.layers.0.mlp.up_proj.weight"], initial["model.layers.0.mlp.up_proj.weight"])
    with mp.Manager() as manager:
        out = manager.dict()
        _spawn(_rl_worker, 2, out, {})
        sharded = out["weights"]
    expected = single.state_dict()
    assert sharded.keys() == expected.keys()  # full_weights keeps the tied LM head: load_state_dict wants it
    for key, value in expected.items():
        torch.testing.assert_close(sharded[key], value, **TOL, msg=key)


@pytest.mark.slow
def test_fsdp_rl_run_on_two_ranks_resumes_on_one_process(tmp_path):
    """The RL recipe under FSDP: rollouts from a full engine copy synced by gathering, a
    reference reset from the gathered weights, a checkpoint of full weights; then 1 process resumes it."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "recipes"))
    from rl_helpers import TINY_RL, tiny_rl_config

    from slowthink.recipes.rl import run_rl
    from slowthink.tracking import read_metrics

    run = tmp_path / "run"
    options = ["distributed.strategy=fsdp", "kl.mode=fixed", "kl.reference_reset_every=1", "model.logprob_chunk_size=8"]
    _torchrun(2, "rl", f"run.output_dir={run}", *TINY_RL, "train.steps=2", *options)
    saved = _weights(run)
    assert "lm_head.weight" not in saved and "model.embed_tokens.weight" in saved  # tied once, as save_pretrained writes
    assert load_trainer_state(latest_checkpoint(run))["reference_reset_at"] == 2
    run_rl(tiny_rl_config(run, "train.steps=3", *options), resume=True)
    assert latest_checkpoint(run).name == "step_000003"
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


def test_fsdp_only_fields_and_a_negative_chunk_are_config_errors():
    from slowthink.config import ConfigError
    from slowthink.recipes.rl_config import RLConfig

    with pytest.raises(ConfigError, match="distributed.param_dtype"):
        load_config(SFTConfig, None, ["distributed.param_dtype=bfloat16"])
    with pytest.raises(ConfigError, match="logprob_chunk_size"):
        load_config(RLConfig, None, ["model.logprob_chunk_size=-1"])
    config = load_config(RLConfig, None, ["distributed.strategy=fsdp", "distributed.param_dtype=bfloat16", "distributed.reduce_dtype=float32"])
    assert config.distributed.param_dtype == "bfloat16"


@pytest.mark.slow
def test_fsdp_bf16_compute_keeps_fp32_shards_and_stays_near_the_fp32_update():
    """distributed.param_dtype=bfloat16: the update differs from fp32 compute (the policy is
    applied) by less than AdamW's per-step bound (4 steps x lr 1e-3 each way)."""
    from slowthink.training.distributed import DistInfo

    single = _rl_model()
    _rl_update(single, _rl_batch(), DistInfo())
    with mp.Manager() as manager:
        out = manager.dict()
        _spawn(_rl_worker, 2, out, {"param_dtype": "bfloat16", "reduce_dtype": "float32"})
        mixed = out["weights"]
    assert all(value.dtype == torch.float32 for value in mixed.values())  # master weights stay fp32
    differences = [float((mixed[k] - v).abs().max()) for k, v in single.state_dict().items()]
    assert 1e-5 < max(differences) < 8e-3
