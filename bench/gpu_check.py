"""One script for a bare single-GPU machine: the checks of the CUDA path that CPU tests cannot make.

    python bench/gpu_check.py --out bench/gpu_check          # on a GPU (`make gpu-check`)
    python bench/gpu_check.py --dry --out /tmp/gpu_check     # on the CPU, tiny shapes (CI)

It needs PyTorch with CUDA and this package's pure-Python dependencies, not vLLM. Each case
runs in turn, is timed and records a pass or the error; the summary goes to
``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` (paste the table into bench/RESULTS.md).
The dry mode runs every case on the CPU with small shapes so the script does not rot
(tests/test_gpu_check.py). Cases, and the GPU-path mistakes they would catch:

- ``generators``: the fast and the generic HF decoders on the device, greedy-equal;
- ``device_placement``: reference / old log-probs and SFT micro-batches (padded, packed)
  from CPU rows into a model on the device;
- ``trainer_state_map_location``: a trainer state saved from the device loads on the CPU;
- ``process_group``: a 1-rank nccl (gloo) group, DDP and FSDP2 with bf16 ``param_dtype``,
  one update each, against the same update on the CPU;
- ``fsdp_shards_onto_the_device``: a model loaded on the CPU ends on the GPU once sharded;
- ``sharded_reference``: the FSDP2 reference in bf16, equal to the policy at step 0;
- ``gradients_freed``: device memory after ``update_policy`` is back to weights + optimizer;
- ``chunked_logprobs``: chunked log-probs at V = 151,936 (16k tokens), peak device memory;
- ``rl_steps``: 2 RL steps of a Qwen2-0.5B-shaped random model with a checkpoint each, then
  ``--resume`` for a third: tokens/s, seconds a step, peak device memory.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

import torch

from slowthink.models.modeling import MemoryPlan, set_memory_plan
from slowthink.models.tiny import TinyModelSpec, build_model, build_tokenizer

CASES = []


def case(function):
    CASES.append(function)
    return function


def tiny_model(device: str, seed: int = 0):
    model = build_model(build_tokenizer(), TinyModelSpec(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128), seed=seed)
    return set_memory_plan(model.to(device), MemoryPlan(logprob_chunk_size=32))


@case
def generators(device: str, dry: bool) -> dict:
    from slowthink.rollout.generator import SamplingParams
    from slowthink.rollout.hf import HFGenerator

    model, tokenizer = tiny_model(device).eval(), build_tokenizer()
    prompts = [tokenizer.encode(f"{a}+{a}=") for a in range(8)]
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    fast = HFGenerator(model, tokenizer, batch_size=8, fast=True).generate(prompts, params)
    slow = HFGenerator(model, tokenizer, batch_size=8, fast=False).generate(prompts, params)
    assert [c.token_ids for c in fast] == [c.token_ids for c in slow], "fast and generic greedy decodes differ"
    return {"completions": len(fast)}


@case
def device_placement(device: str, dry: bool) -> dict:
    from slowthink.data.sft import encode_sft_example
    from slowthink.recipes.sft import micro_batch_logprobs
    from slowthink.training.logprobs import batched_logprobs

    model, tokenizer = tiny_model(device), build_tokenizer()
    ids = torch.randint(10, 60, (4, 12))
    logprobs = batched_logprobs(model, ids, torch.ones_like(ids), 1.0, 2)  # CPU rows, model on the device
    assert logprobs.device.type == "cpu"
    examples = [encode_sft_example(tokenizer, f"{a}+{a}=", f"{2 * a}", "chat", False) for a in range(4)]
    for pack_length in (0, 64):
        for logprobs_BT, mask_BT in micro_batch_logprobs(model, examples, 2, tokenizer.pad_token_id, pack_length):
            (logprobs_BT * mask_BT).sum().backward()
    return {"rows": len(ids)}


@case
def trainer_state_map_location(device: str, dry: bool) -> dict:
    from slowthink.training.checkpoint import load_trainer_state

    with tempfile.TemporaryDirectory() as folder:
        torch.save({"moments": torch.ones(8, device=device)}, Path(folder) / "trainer_state.pt")
        loaded = load_trainer_state(Path(folder))["moments"]
    assert loaded.device.type == "cpu", loaded.device
    return {}


def _one_rank_group(device: str) -> None:
    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def _one_update(model, device: str) -> None:
    from slowthink.training.logprobs import forward_logprobs

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(10, 60, (4, 12), generator=torch.Generator().manual_seed(0)).to(device)
    logprobs, _ = forward_logprobs(model, ids, torch.ones_like(ids))
    (-logprobs.mean()).backward()
    optimizer.step()


@case
def process_group(device: str, dry: bool) -> dict:
    import torch.distributed as dist

    from slowthink.training.distributed import DistInfo, DistributedConfig, full_weights, wrap_model

    expected = tiny_model("cpu")
    _one_update(expected, "cpu")
    _one_rank_group(device)
    errors = {}
    try:
        for name, config in {"ddp": DistributedConfig(), "fsdp_bf16": DistributedConfig(strategy="fsdp", param_dtype="bfloat16")}.items():
            model = tiny_model(device)
            wrapped = wrap_model(model, DistInfo(0, 2), config)  # "several ranks": a group of one
            _one_update(wrapped, device)
            weights = full_weights(wrapped)
            errors[name] = max(float((weights[k].float().cpu() - v).abs().max()) for k, v in expected.state_dict().items())
    finally:
        dist.destroy_process_group()
    # One AdamW step at lr 1e-3 moves a weight by at most ~1e-3 each way: bf16 compute stays inside 2x that.
    assert errors["ddp"] < 1e-5 and errors["fsdp_bf16"] < 2.5e-3, errors
    return {"max_abs_difference": errors}


@case
def fsdp_shards_onto_the_device(device: str, dry: bool) -> dict:
    import torch.distributed as dist

    from slowthink.training.distributed import DistInfo, DistributedConfig, wrap_model

    _one_rank_group(device)
    try:
        model = tiny_model("cpu")  # what the RL recipe loads under FSDP: the CPU, never the whole model on the GPU
        wrap_model(model, DistInfo(0, 2), DistributedConfig(strategy="fsdp", param_dtype="bfloat16"))
        places = {p.to_local().device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    finally:
        dist.destroy_process_group()
    assert places == {torch.device(device).type}, places
    return {}


@case
def sharded_reference(device: str, dry: bool) -> dict:
    import torch.distributed as dist

    from slowthink.training.distributed import DistInfo, DistributedConfig, done_with_reference, wrap_model, wrap_reference
    from slowthink.training.logprobs import batched_logprobs

    _one_rank_group(device)
    try:
        config, info = DistributedConfig(strategy="fsdp", param_dtype="bfloat16"), DistInfo(0, 2)
        policy = tiny_model("cpu")
        reference = copy.deepcopy(policy).requires_grad_(False)  # both on the CPU: sharding moves them
        wrap_model(policy, info, config)
        wrap_reference(reference, info, config)
        ids = torch.randint(10, 60, (4, 12))
        same = torch.equal(
            batched_logprobs(policy, ids, torch.ones_like(ids), 1.0, 2), batched_logprobs(reference, ids, torch.ones_like(ids), 1.0, 2)
        )
        done_with_reference(reference)
        dtypes = {str(p.dtype) for p in reference.parameters()}
    finally:
        dist.destroy_process_group()
    assert same, "the bf16 reference and the bf16 policy differ at step 0 (KL not zero)"
    assert dtypes == {"torch.bfloat16"}, dtypes
    return {}


@case
def gradients_freed(device: str, dry: bool) -> dict:
    from slowthink.training.batch import build_sequence_batch
    from slowthink.training.optim import OptimConfig, build_scheduler
    from slowthink.training.policy_update import LossSettings, update_policy

    model = tiny_model(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = build_sequence_batch([[11, 12]] * 4, [[13, 14, 15]] * 4, [[1, 1, 1]] * 4, pad_id=0, advantages=[1.0, -1.0, 0.5, -0.5])
    settings = LossSettings(0.2, 0.28, "token_mean", 16, 0.0, "k3", 0.0, 1.0, True, False)
    update_policy(model, optimizer, build_scheduler(optimizer, OptimConfig(), 4), batch, settings, 1, 1, 2, 1.0)
    kept = [name for name, p in model.named_parameters() if p.grad is not None]
    assert not kept, f"gradients kept after the update: {kept[:3]}"
    return {"allocated_mb": torch.cuda.memory_allocated() / 2**20 if device.startswith("cuda") else None}


@case
def chunked_logprobs(device: str, dry: bool) -> dict:
    from slowthink.training.logprobs import chunked_logprobs as chunked

    vocab, tokens, hidden = (1024, 256, 64) if dry else (151_936, 16_384, 896)
    dtype = torch.float32 if dry else torch.bfloat16
    hidden_NH = torch.randn(1, tokens, hidden, device=device, dtype=dtype, requires_grad=True)
    weight_VH = torch.randn(vocab, hidden, device=device, dtype=dtype, requires_grad=True) * 0.02
    targets = torch.randint(0, vocab, (1, tokens), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    logprobs, _ = chunked(hidden_NH, weight_VH, None, targets, 1.0, 1024, with_entropy=True)
    logprobs.sum().backward()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    # The memory model's figure (slowthink/plan.py): the chunk's logits, plus the inputs and
    # their gradients (hidden states and head weight) in the compute dtype.
    from slowthink.plan import ModelShape, RunShape, logits_bytes

    shape = ModelShape(layers=1, hidden=hidden, intermediate=hidden, vocab=vocab, heads=1, kv_heads=1)
    tensors = 2 * (tokens * hidden + vocab * hidden) * hidden_NH.element_size()
    planned = (logits_bytes(shape, RunShape(sequence=tokens, logprob_chunk=1024, entropy=True)) + tensors) / 2**30
    # Unchunked, the float32 logits alone would take tokens x vocab x 4 bytes.
    return {"vocab": vocab, "tokens": tokens, "peak_gib": peak, "plan_gib": planned, "unchunked_logits_gib": tokens * vocab * 4 / 2**30}


@case
def rl_steps(device: str, dry: bool) -> dict:
    """A few RL steps of a Qwen2-0.5B-shaped random model (hidden 896, 24 layers, MLP 4864; the
    tiny task's vocabulary), a checkpoint each step, then ``--resume`` for one more."""
    from slowthink.config import load_config
    from slowthink.models.tiny import save_tiny
    from slowthink.recipes.rl import run_rl
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.tracking import read_metrics

    spec = TinyModelSpec(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
    if not dry:
        spec = TinyModelSpec(hidden_size=896, num_layers=24, num_heads=14, intermediate_size=4864, max_positions=4096)
    with tempfile.TemporaryDirectory() as folder:
        path = save_tiny(Path(folder) / "model", spec)
        overrides = [
            f"run.output_dir={folder}/run",
            f"model.path={path}",
            f"model.device={device}",
            "run.progress=false",
            "reward.checker=exact",
            "data.tiny_train_size=64",
            "data.tiny_eval_size=8",
            "rollout.prompts_per_step=8",
            "rollout.rollouts_per_prompt=4",
            f"rollout.max_length_schedule=[[0,{16 if dry else 1024}]]",
            "train.eval_every=0",
            "train.save_every=1",
            "kl.mode=fixed",
            "model.gradient_checkpointing=true",
            "model.logprob_chunk_size=256",
            "update.micro_batch_size=8",
            "algorithm.drop_uniform_groups=false",
            "reward.weights={correctness: 1.0, length: 1.0}",
            *([] if dry else ["model.autocast=bfloat16"]),
        ]
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        run_rl(load_config(RLConfig, None, [*overrides, "train.steps=2"]))
        run_rl(load_config(RLConfig, None, [*overrides, "train.steps=3"]), resume=True)
        rows = read_metrics(Path(folder) / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3], [r["step"] for r in rows]
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"tokens_per_s": [round(r["tokens_per_s"], 1) for r in rows], "step_s": [round(r["time/step_s"], 2) for r in rows], "peak_gib": peak}


def run(device: str, dry: bool) -> list[dict]:
    results = []
    for function in CASES:
        start = time.perf_counter()
        try:
            detail, status = function(device, dry), "pass"
        except Exception as exc:
            detail, status = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=4)}, "fail"
        results.append({"case": function.__name__, "status": status, "seconds": round(time.perf_counter() - start, 2), **detail})
        print(f"[gpu-check] {function.__name__}: {status} ({results[-1]['seconds']} s)", flush=True)
    return results


def write(out: Path, results: list[dict], device: str, dry: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    header = {"device": name, "dry": dry, "torch": torch.__version__, "cases": results}
    (out / "gpu_check.json").write_text(json.dumps(header, indent=1, default=str))
    lines = [
        f"gpu-check on {name} (torch {torch.__version__}{', dry mode' if dry else ''})",
        "",
        "| case | status | s | detail |",
        "|---|---|---|---|",
    ]
    for r in results:
        detail = {k: v for k, v in r.items() if k not in ("case", "status", "seconds", "trace")}
        lines.append(f"| {r['case']} | {r['status']} | {r['seconds']} | {json.dumps(detail, default=str)} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="run every case on the CPU with small shapes (CI)")
    parser.add_argument("--out", type=Path, default=Path("bench/gpu_check"))
    args = parser.parse_args()
    if not args.dry and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry on a CPU machine")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = "cpu" if args.dry else "cuda"
    results = run(device, args.dry)
    write(args.out, results, device, args.dry)
    return 0 if all(r["status"] == "pass" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
