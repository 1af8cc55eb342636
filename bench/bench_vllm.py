"""Rollout throughput on the tiny model: vLLM (the CPU build) vs ``HFGenerator``, for the record.

Both engines sample the same prompts with the same settings (temperature 1.0, n rollouts
per prompt, up to a fixed number of new tokens; the untrained model seldom emits EOS, and
tokens/s counts the tokens each engine actually generated). Each figure is the best of ``--repeats``
timed calls after one warm-up call. On a ~1M-parameter model decoding is dominated by
per-step overhead, not by the model, so this says nothing about vLLM on a real model; it is
recorded so that a regression of the CPU path shows.

Other processes' CPU use is read from /proc during each phase (the machine's busy time
minus this process tree's); a phase where others used more than ``--max-other-cores`` is
marked CONTAMINATED.

    make vllm-env
    .venv-vllm/bin/python bench/bench_vllm.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_usage import busy_jiffies, tree_jiffies  # noqa: E402


def timed(generate, prompts, params, repeats: int) -> tuple[float, int, float]:
    """(best seconds, generated tokens, other processes' mean cores) over ``repeats`` calls."""
    generate(prompts, params)  # warm-up: first-call allocations, vLLM's scheduler start
    best, tokens, others = float("inf"), 0, 0.0
    for _ in range(repeats):
        busy0, mine0, t0 = busy_jiffies(), tree_jiffies(os.getpid()), time.perf_counter()
        completions = generate(prompts, params)
        seconds = time.perf_counter() - t0
        tick = os.sysconf("SC_CLK_TCK")
        other = ((busy_jiffies() - busy0) - (tree_jiffies(os.getpid()) - mine0)) / tick / seconds
        if seconds < best:
            best, tokens, others = seconds, sum(len(c.token_ids) for c in completions), other
    return best, tokens, others


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the HF generator")
    parser.add_argument("--max-other-cores", type=float, default=0.25)
    args = parser.parse_args()

    import torch

    from slowthink.data.tiny_task import ArithmeticTask
    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rollout.generator import SamplingParams
    from slowthink.rollout.hf import HFGenerator
    from slowthink.rollout.vllm_backend import VLLMEngineConfig, VLLMGenerator

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model_and_tokenizer("tiny")
    model.eval()
    problems = ArithmeticTask().problems(args.prompts, seed=0, heldout=False)
    prompts = [tokenizer.encode(f"<|user|>{p.problem}<|assistant|>") for p in problems]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, n=args.n, seed=0)
    hf = HFGenerator(model, tokenizer, batch_size=args.prompts * args.n)

    results = {"hf": timed(hf.generate, prompts, params, args.repeats)}
    t0 = time.perf_counter()
    engine = VLLMGenerator("tiny", VLLMEngineConfig(max_model_len=512), dtype="float32", tokenizer=tokenizer)
    startup = time.perf_counter() - t0
    results["vllm"] = timed(engine.generate, prompts, params, args.repeats)

    print(
        f"tiny model, {args.prompts} prompts x {args.n} rollouts x {args.new_tokens} new tokens, "
        f"best of {args.repeats}; HF torch threads {args.threads}; vLLM engine start {startup:.1f} s"
    )
    for name, (seconds, tokens, others) in results.items():
        flag = "  CONTAMINATED" if others > args.max_other_cores else ""
        print(f"{name:5s} {tokens:6d} tokens in {seconds:6.2f} s = {tokens / seconds:8.0f} tokens/s (other processes {others:.2f} cores){flag}")


if __name__ == "__main__":
    main()
