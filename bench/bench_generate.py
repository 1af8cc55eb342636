"""Generation tokens/s at batch 64: slowthink's fast path vs its generic loop vs transformers ``generate``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_generate.py [--size h128-l4] [--threads 2] [--repeats 3]

The model is the benchmark model (bench/bench_model.py): 8 prompts x 8 samples = 64 rows, 64 new
tokens, T = 1.0, top-p 1. Every engine runs the same prompts on the same weights in this
process; each timed run records the cores other processes kept busy and is repeated when
contaminated (bench/load_meter.py). Model-FLOPs utilisation is the forward FLOPs of the
tokens generated (bench_model.flops_per_token, prefill included) per second, over the
fp32 matmul rate measured here with the same threads.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import build, flops_per_token, matmul_peak_gflops  # noqa: E402
from load_meter import machine_note, timed  # noqa: E402

PROMPTS = ["12+34+56", "def add(a, b):", "import os\n", "The answer is", "for i in range(", "x = [", "class A:", "# note"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="h128-l4", choices=["h128-l4", "h256-l6"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine (the median is reported)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--models", default=tempfile.gettempdir(), help="where the benchmark model is built/reused")
    args = parser.parse_args()

    import torch

    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rollout.generator import SamplingParams
    from slowthink.rollout.hf import HFGenerator

    peak = matmul_peak_gflops(args.threads)
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model_and_tokenizer(str(build(args.size, Path(args.models))))
    model.eval()
    prompt_ids = [tokenizer.encode(p) for p in PROMPTS]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.new_tokens, n=8, seed=0)
    fast, generic = HFGenerator(model, tokenizer, batch_size=64), HFGenerator(model, tokenizer, batch_size=64, fast=False)
    fast_bf16 = HFGenerator(model, tokenizer, batch_size=64, dtype="bfloat16")
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)

    def run_slowthink(generator):
        return sum(len(c.token_ids) for c in generator.generate(prompt_ids, params))

    padded = tokenizer([p for p in PROMPTS for _ in range(8)], return_tensors="pt", padding=True, padding_side="left")

    @torch.no_grad()
    def run_transformers(model=model):
        out = model.generate(
            **padded, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.new_tokens, pad_token_id=tokenizer.pad_token_id
        )
        new = out[:, padded.input_ids.shape[1] :]
        # Tokens up to and including each row's first EOS (what a sampler returns).
        ended = (new == tokenizer.eos_token_id).long().cumsum(-1)
        return int(((ended == 0) | ((ended == 1) & (new == tokenizer.eos_token_id))).sum())

    engines = {
        "slowthink fast (static cache)": lambda: run_slowthink(fast),
        "slowthink generic loop": lambda: run_slowthink(generic),
        "transformers generate": run_transformers,
        "slowthink fast, bfloat16": lambda: run_slowthink(fast_bf16),
        "transformers generate, bfloat16 weights": lambda: run_transformers(model_bf16),
    }
    prompt_len = statistics.mean(len(p) for p in prompt_ids)
    rows, results = {}, []
    for name, fn in engines.items():
        fn()  # warm-up
        runs = [timed(fn) for _ in range(args.repeats)]
        results += runs
        seconds = statistics.median(r.seconds for r in runs)
        tokens = runs[0].value
        # Generated tokens each attend to prompt + half the completion on average; plus the prefill.
        flops = tokens * flops_per_token(model.config, prompt_len + args.new_tokens / 2)
        flops += 64 * prompt_len * flops_per_token(model.config, prompt_len / 2)
        rows[name] = (tokens / seconds, seconds, flops / seconds / 1e9 / peak, max(r.other_cores for r in runs))

    base = rows["transformers generate"][0]
    print(f"## Generation, {args.size}, batch 64 (8 prompts x 8), {args.new_tokens} new tokens, T=1.0, {args.threads} torch threads")
    print(f"fp32 matmul peak measured: {peak:.0f} GFLOP/s\n")
    print("| engine | tokens/s | s per batch | vs transformers generate | MFU | other cores (max) |")
    print("|---|---|---|---|---|---|")
    for name, (rate, seconds, mfu, others) in rows.items():
        print(f"| {name} | {rate:.0f} | {seconds:.3f} | {rate / base:.2f}x | {mfu:.1%} | {others:.2f} |")
    print(f"\nload: {machine_note(results)}")


if __name__ == "__main__":
    main()
