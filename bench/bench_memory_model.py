"""The memory model (slowthink/plan.py) against the measured peak RSS of SFT and RL steps on CPU.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_memory_model.py [--only NAME] [--out FILE]

Each case runs in fresh processes (2 gloo ranks for DDP and FSDP): a Qwen2-shaped random
model at the real vocabulary (151,936, tied embeddings, fp32), AdamW, one warm-up step (the
moments exist from then on), then a measured step: for SFT the log-probs of one micro-batch,
backward and the optimizer step; for RL the same after the KL reference's log-probs (a
frozen copy, sharded under FSDP). A thread samples the resident set (``/proc/self/statm``)
every 2 ms; the measured figure is the step's peak minus the process's RSS after its imports
(the interpreter and libraries, which the model does not describe). The prediction is
``plan.estimate(...).update_peak`` with ``foreach_optimizer=False`` (AdamW on CPU updates one
tensor at a time). Timings are not reported: the machine is shared.
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
    _step(trainer, reference, optimizer, ids, mask)  # the moments exist from here
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
    args = parser.parse_args()
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
