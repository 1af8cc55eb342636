"""Host memory of loading the policy on a rank other than 0 under FSDP on several ranks.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_fsdp_load.py [--hidden 1024 --layers 8]

``run_setup.load_trainer_policy`` as rank 1 of 2 loads it: with ``ranks_load_empty`` (what
``rl`` and, since 2026-12-07, ``sft`` do under FSDP) it builds the architecture on ``meta``
and ``shard_model`` later fills its shards from rank 0; without it (what ``sft`` did), it
reads the whole checkpoint. Each way runs in a fresh process; the figure is the load's peak
RSS minus the process's RSS before it (imports done). The model is a Qwen2-shaped random
model at the real vocabulary (151,936, tied embeddings, fp32), saved once to a temporary
folder with the tiny tokenizer. No process group is needed: the load has no collectives.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "src")]
from bench_checkpoint_memory import PeakRSS, _model  # noqa: E402


def _load(path: str, empty: bool, out: dict) -> None:
    from slowthink.recipes.common_config import ModelConfig
    from slowthink.training.distributed import DistInfo, DistributedConfig
    from slowthink.training.run_setup import load_trainer_policy

    torch.set_num_threads(1)
    config = ModelConfig(path=path)
    with PeakRSS() as rss:
        model, _ = load_trainer_policy(config, DistributedConfig(strategy="fsdp"), DistInfo(1, 2), ranks_load_empty=empty)
    out[empty] = (rss.peak - rss.before, all(p.is_meta for p in model.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    from slowthink.models.tiny import build_tokenizer

    with tempfile.TemporaryDirectory() as root:
        model = _model(args.hidden, args.layers)
        parameters = sum(p.numel() for p in model.parameters())
        model.save_pretrained(root)
        build_tokenizer().save_pretrained(root)
        del model
        context = mp.get_context("spawn")
        with context.Manager() as manager:
            out = manager.dict()
            for empty in (False, True):
                process = context.Process(target=_load, args=(root, empty, out))
                process.start()
                process.join()
                if process.exitcode:
                    raise SystemExit(f"the load with ranks_load_empty={empty} failed (exit {process.exitcode})")
            results = dict(out)
    weights_mib = parameters * 4 / 2**20
    full, (empty_mib, meta) = results[False][0], results[True]
    print(f"model: hidden {args.hidden}, {args.layers} layers, {parameters / 1e6:.1f}M parameters, {weights_mib:.0f} MiB of fp32 weights")
    print(f"rank 1's load, every rank reads the checkpoint (sft before): {full:8.0f} MiB peak above its imports")
    print(f"rank 1's load, empty on meta (rl, and sft now):               {empty_mib:8.0f} MiB peak above its imports (all on meta: {meta})")
    print(f"saved on each rank but 0: {full - empty_mib:.0f} MiB ({full / max(empty_mib, 1):.0f}x)")


if __name__ == "__main__":
    main()
