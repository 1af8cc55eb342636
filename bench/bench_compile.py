"""Does ``torch.compile`` pay for the fast path's decode step on CPU?

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_compile.py [--size h128-l4] [--dtype float32]

Runs the fast path's decode forward (``rollout/fast_qwen2.StaticDecoder.forward``, batch 64,
64 steps over a static cache) eagerly and under ``torch.compile(dynamic=True)`` (inductor's
C++ kernels), on the benchmark model of bench/bench_model.py, and prints the milliseconds per
decode step of each, best of 3, and the one-off compile time. Compiling pays only when the
steps it saves outweigh the compile (paid again in every new process, and on new shapes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import build  # noqa: E402
from load_meter import machine_note, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="h128-l4", choices=["h128-l4", "h256-l6"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=tempfile.gettempdir())
    args = parser.parse_args()

    # Compile in this process: a pool of compile workers would count as another process's load.
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    import torch

    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rollout.fast_qwen2 import StaticDecoder

    torch.set_num_threads(args.threads)
    model, _ = load_model_and_tokenizer(str(build(args.size, Path(args.models))))
    model.eval()
    batch, prompt, steps = 64, 8, 64
    decoder = StaticDecoder(model, batch, prompt + steps, getattr(torch, args.dtype))
    token_ids = torch.randint(0, model.config.vocab_size, (batch, 1))
    positions = torch.full((batch, 1), prompt)

    def decode(forward) -> int:
        with torch.inference_mode():
            for step in range(steps):
                forward(token_ids, positions + step, prompt + step)
        return steps

    def best_ms(forward) -> tuple[float, list]:
        decode(forward)  # warm-up
        runs = [timed(lambda: decode(forward)) for _ in range(3)]
        return min(r.seconds for r in runs) / steps * 1e3, runs

    eager_ms, eager_runs = best_ms(decoder.forward)
    compiled = torch.compile(decoder.forward, dynamic=True)
    start = time.perf_counter()
    decode(compiled)
    compile_s = time.perf_counter() - start
    compiled_ms, compiled_runs = best_ms(compiled)
    print(f"## torch.compile of the decode step, {args.size}, {args.dtype}, batch {batch}, {args.threads} torch threads\n")
    print("| decode step | ms per step | vs eager |")
    print("|---|---|---|")
    print(f"| eager | {eager_ms:.2f} | 1.00x |")
    print(f"| torch.compile(dynamic=True) | {compiled_ms:.2f} | {eager_ms / compiled_ms:.2f}x |")
    saved_ms = eager_ms - compiled_ms
    print(
        f"\nfirst compiled call (compile + {steps} steps): {compile_s:.1f} s; it pays back after ~{compile_s * 1e3 / max(saved_ms, 1e-9):.0f} decode steps"
    )
    print(f"load: {machine_note(eager_runs + compiled_runs)}")


if __name__ == "__main__":
    main()
