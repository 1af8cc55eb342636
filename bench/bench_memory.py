"""Peak memory and time of one training forward+backward of log-probs and entropy, chunked vs not.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_memory.py [--budget-gb 8] [--chunk 1024]

A narrow Qwen2 model (hidden 64, 2 layers, 2 heads) makes the LM head's logits the
whole story, as they are for a real model at long response lengths: a 1.5B model's
activations per token are ~30x its hidden size, while the logits are 151,936 floats
per token (training/logprobs.py). One response of T tokens (B = 1) is run through
``forward_logprobs(..., with_entropy=True)`` and a loss that uses both, then backward.

Each configuration runs in a fresh interpreter, and its peak is that process's RSS
high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): torch has no CPU
allocator statistics, and tracemalloc does not see torch's allocations. The table gives
the step's own increment (peak during the step minus the high-water mark before it) and
the whole process's peak. An unchunked configuration whose logits alone would exceed
``--budget-gb / 8`` is not run (forward+backward peaks at about eight logits-sized
tensors, measured),
so a shared machine is not pushed out of memory; the table says so.

Sweeps: response length 512..8192 at Qwen2.5's vocabulary (151,936), and vocabulary
8,192..151,936 at 2,048 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

LENGTHS = (512, 1024, 2048, 4096, 8192)
VOCABS = (8192, 32768, 151936)
QWEN_VOCAB = 151936
VOCAB_SWEEP_LENGTH = 2048


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(length: int, vocab: int, chunk: int) -> dict:
    """One configuration, in this (fresh) process."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from slowthink.models.modeling import MemoryPlan
    from slowthink.training.logprobs import forward_logprobs

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=length + 8,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    input_ids = torch.randint(0, vocab, (1, length + 1))
    attention = torch.ones_like(input_ids)
    plan = MemoryPlan(logprob_chunk_size=chunk)
    before = _maxrss_mb()
    start = time.perf_counter()
    logprobs, entropy = forward_logprobs(model, input_ids, attention, temperature=0.6, with_entropy=True, plan=plan)
    loss = -(logprobs.mean() + 0.01 * entropy.mean())
    loss.backward()
    seconds = time.perf_counter() - start
    return {
        "length": length,
        "vocab": vocab,
        "chunk": chunk,
        "seconds": seconds,
        "step_mb": _maxrss_mb() - before,
        "peak_mb": _maxrss_mb(),
        "loss": float(loss.detach()),
    }


def measure(length: int, vocab: int, chunk: int, budget_gb: float) -> dict:
    logits_gb = length * vocab * 4 / 1e9
    if chunk == 0 and logits_gb > budget_gb / 8:
        return {"length": length, "vocab": vocab, "chunk": chunk, "skipped": f"logits alone {logits_gb:.1f} GB"}
    command = [sys.executable, __file__, "--one", str(length), str(vocab), str(chunk)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        return {"length": length, "vocab": vocab, "chunk": chunk, "skipped": f"failed: {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def row(chunked: dict, plain: dict) -> str:
    def cell(r: dict) -> str:
        if "skipped" in r:
            return f"not run ({r['skipped']}) | |"
        return f"{r['step_mb']:.0f} ({r['peak_mb']:.0f}) | {r['seconds']:.2f}"

    return f"| {chunked['length']} | {chunked['vocab']:,} | {cell(chunked)} | {cell(plain)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, type=int, metavar=("LENGTH", "VOCAB", "CHUNK"), help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=1024, help="tokens per chunk of the chunked runs")
    parser.add_argument("--budget-gb", type=float, default=8.0, help="memory an unchunked run may take")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    configs = [(length, QWEN_VOCAB) for length in LENGTHS] + [(VOCAB_SWEEP_LENGTH, v) for v in VOCABS if v != QWEN_VOCAB]
    print(f"chunk {args.chunk} tokens; cells: step MB (process peak MB) | seconds")
    print("| response tokens | vocabulary | chunked MB | chunked s | unchunked MB | unchunked s |")
    print("|---|---|---|---|---|---|")
    for length, vocab in configs:
        print(row(measure(length, vocab, args.chunk, args.budget_gb), measure(length, vocab, 0, args.budget_gb)), flush=True)


if __name__ == "__main__":
    main()
