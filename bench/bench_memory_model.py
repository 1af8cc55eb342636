"""The memory model (slowthink/plan.py) against the measured peak RSS of SFT and RL steps on CPU.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_memory_model.py [--only NAME] [--out FILE]

Each case runs in fresh processes (2 gloo ranks for DDP and FSDP): a Qwen2-shaped random
model at the real vocabulary (151,936, tied embeddings, fp32), AdamW, two warm-up steps,
then a measured step: for SFT the log-probs of one micro-batch, backward and the optimizer
step; for RL the same after the KL reference's log-probs (a frozen copy, sharded under
FSDP). Two warm-up steps, because the first makes AdamW's moments and the second is DDP's
one-time bucket rebuild: its second forward replaces the all-reduce buckets with new ones,
whose pages are not resident until the backward writes them, after the step's peak (a
second step under-states DDP by the buckets, 4 bytes a parameter). The third step is every
later step. A thread samples the resident set (``/proc/self/statm``) every 2 ms; the
measured figure is the step's peak minus the process's RSS after its imports (the
interpreter and libraries, transformers' Qwen2 included, which the model does not
describe). The prediction is ``plan.estimate(...).update_peak`` with
``foreach_optimizer=False`` (AdamW on CPU updates one tensor at a time). Timings are not
reported: the machine is shared.

``--live`` runs the ranks with glibc's mmap threshold fixed at 64 KiB
(``MALLOC_MMAP_THRESHOLD_``): every freed tensor above it goes back to the system at once,
so the resident set follows the live tensors, which is what the model counts; by default
glibc keeps freed tensors under 32 MiB in its heap (as CUDA's caching allocator keeps
freed blocks), and the difference between the two runs is that slack.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "src")]
from bench_checkpoint_memory import PeakRSS, _rss_mb  # noqa: E402

from slowthink.plan import ModelShape, RunShape, estimate  # noqa: E402

VOCAB = 151936
# name: (recipe, hidden, layers, T, b, gradient checkpointing, logprob chunk, ranks, strategy)
CASES = {
    "sft-40M-T1k": ("sft", 256, 4, 1024, 1, False, 1024, 1, "ddp"),
    "sft-40M-T4k": ("sft", 256, 4, 4096, 1, False, 1024, 1, "ddp"),
    "sft-40M-T512-unchunked": ("sft", 256, 2, 512, 1, False, 0, 1, "ddp"),
    "sft-103M-T2k": ("sft", 512, 8, 2048, 1, False, 1024, 1, "ddp"),
    "sft-103M-T2k-ckpt": ("sft", 512, 8, 2048, 1, True, 1024, 1, "ddp"),
    "sft-344M-T1k-ckpt": ("sft", 1024, 12, 1024, 1, True, 1024, 1, "ddp"),
    "rl-103M-T1k": ("rl", 512, 8, 1024, 2, False, 1024, 1, "ddp"),
    "sft-103M-T1k-ddp2": ("sft", 512, 8, 1024, 1, False, 1024, 2, "ddp"),
    "sft-103M-T1k-fsdp2": ("sft", 512, 8, 1024, 1, False, 1024, 2, "fsdp"),
    "rl-103M-T1k-fsdp2": ("rl", 512, 8, 1024, 1, False, 1024, 2, "fsdp"),
}


# The first step makes AdamW's moments; the second is DDP's bucket rebuild (module docstring).
WARMUP_STEPS = 2


def shape_of(hidden: int, layers: int) -> ModelShape:
    heads = hidden // 64
    return ModelShape(layers=layers, hidden=hidden, intermediate=4 * hidden, vocab=VOCAB, heads=heads, kv_heads=max(heads // 2, 1), tied=True)


def _model(shape: ModelShape, checkpointing: bool, chunk: int) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from slowthink.models.modeling import MemoryPlan, set_memory_plan

    config = Qwen2Config(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    return set_memory_plan(model, MemoryPlan(logprob_chunk_size=chunk, gradient_checkpointing=checkpointing))


def _step(model, reference, optimizer, ids, mask) -> None:
    from slowthink.training.distributed import done_with_reference
    from slowthink.training.logprobs import forward_logprobs

    ref_logprobs = None
    if reference is not None:
        with torch.no_grad():
            ref_logprobs, _ = forward_logprobs(reference, ids, mask)
        done_with_reference(reference)
    logprobs, _ = forward_logprobs(model, ids, mask)
    loss = -logprobs.mean() if ref_logprobs is None else -logprobs.mean() + 0.01 * (logprobs - ref_logprobs).pow(2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _rank(rank: int, world: int, port: int, name: str, out: dict) -> None:
    recipe, hidden, layers, length, batch, checkpointing, chunk, _, strategy = CASES[name]
    torch.set_num_threads(1)
    # Every import before the baseline: transformers' Qwen2 alone is about 150 MiB.
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401

    import slowthink.models.modeling  # noqa: F401
    import slowthink.training.logprobs  # noqa: F401
    from slowthink.training.distributed import DistInfo, DistributedConfig, wrap_model, wrap_reference

    info = DistInfo(rank, world)
    if world > 1:
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    baseline = _rss_mb()
    shape = shape_of(hidden, layers)
    model = _model(shape, checkpointing, chunk)
    model.train()
    reference = copy.deepcopy(model).eval().requires_grad_(False) if recipe == "rl" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    config = DistributedConfig(strategy=strategy)
    trainer = wrap_model(model, info, config, optimizer)
    reference = wrap_reference(reference, info, config)
    ids = torch.randint(0, VOCAB, (batch, length))
    mask = torch.ones_like(ids)
    for _ in range(WARMUP_STEPS):
        _step(trainer, reference, optimizer, ids, mask)
    with PeakRSS() as rss:
        _step(trainer, reference, optimizer, ids, mask)
    out[rank] = {"baseline_mb": baseline, "peak_mb": rss.peak, "measured_mb": rss.peak - baseline}
    if world > 1:
        dist.destroy_process_group()


def measure(name: str) -> dict:
    ranks = CASES[name][7]
    from spawn_helpers import free_port

    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_rank, args=(ranks, free_port(), name, out), nprocs=ranks, start_method="spawn")
        measured = max(out[rank]["measured_mb"] for rank in range(ranks))
        peak = max(out[rank]["peak_mb"] for rank in range(ranks))
    return predict(name, measured, peak)


def predict(name: str, measured: float, peak: float) -> dict:
    """The memory model's figure for a case beside its measurement."""
    recipe, hidden, layers, length, batch, checkpointing, chunk, ranks, strategy = CASES[name]
    shape = shape_of(hidden, layers)
    run = RunShape(
        ranks=ranks,
        strategy=strategy,
        reference=recipe == "rl",
        sequence=length,
        micro_batch=batch,
        gradient_checkpointing=checkpointing,
        logprob_chunk=chunk,
        foreach_optimizer=False,
    )
    predicted = estimate(shape, run).update_peak / 2**20
    return {
        "case": name,
        "parameters_m": shape.parameters / 1e6,
        "predicted_mb": predicted,
        "measured_mb": measured,
        "peak_rss_mb": peak,
        "error": predicted / measured - 1,
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rescore", type=Path, help="A previous --out: the model's predictions again, the measurements as they were.")
    parser.add_argument("--live", action="store_true", help="glibc returns freed tensors over 64 KiB at once: RSS follows the live tensors.")
    args = parser.parse_args()
    if args.live:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # read by each spawned rank's glibc at its start
    rows = []
    if args.rescore:
        saved = json.loads(args.rescore.read_text())
        args.only = [row["case"] for row in saved]
        measured = {row["case"]: (row["measured_mb"], row["peak_rss_mb"]) for row in saved}
    print("| case | parameters | predicted (MiB) | measured step peak over baseline (MiB) | peak RSS (MiB) | error |")
    print("|---|---|---|---|---|---|")
    for name in args.only or CASES:
        row = predict(name, *measured[name]) if args.rescore else measure(name)
        rows.append(row)
        print(
            f"| {row['case']} | {row['parameters_m']:.0f}M | {row['predicted_mb']:.0f} | {row['measured_mb']:.0f} | {row['peak_rss_mb']:.0f} | {row['error']:+.1%} |",
            flush=True,
        )
        if args.out:
            args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
