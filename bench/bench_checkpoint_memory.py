"""Host memory of one checkpoint save per rank: the full format's gather against sharded (DCP) shards.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_checkpoint_memory.py [--hidden 768 --layers 8] [--out FILE]

Two gloo ranks shard a Qwen2-shaped model (vocabulary 151,936, AdamW moments initialised
by one step) with FSDP2, then save it once, each format in a fresh pair of processes:

* ``full``: ``checkpoint_states`` gathers the weights and the optimizer state to rank 0,
  which writes ``model.safetensors`` and ``trainer_state.pt`` (training/checkpoint.py);
* ``sharded``: every rank writes its own shards (training/sharded_checkpoint.py).

A thread samples each rank's resident set (``/proc/self/statm``) every 2 ms during the save;
the table gives each rank's RSS before the save and the peak increase during it. Timings
are not reported: the machine this ran on is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


class PeakRSS:
    """The highest RSS seen while the block runs, sampled by a thread."""

    def __enter__(self) -> PeakRSS:
        self.before = _rss_mb()
        self.peak = self.before
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, _rss_mb())


def _model(hidden: int, layers: int) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    heads = max(hidden // 64, 1)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        tie_word_embeddings=True,
    )
    return Qwen2ForCausalLM(config)


def _rank(rank: int, port: int, fmt: str, hidden: int, layers: int, root: str, out: dict) -> None:
    import torch.distributed as dist

    from slowthink.training import checkpoint as ckpt
    from slowthink.training.distributed import DistInfo, DistributedConfig, barrier, checkpoint_states, wrap_model
    from slowthink.training.sharded_checkpoint import ShardedWriter

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    info = DistInfo(rank, 2)
    model = _model(hidden, layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wrap_model(model, info, DistributedConfig(strategy="fsdp"), optimizer)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()  # the AdamW moments exist, as in any checkpoint after step 1
    optimizer.zero_grad(set_to_none=True)
    barrier(info)
    with PeakRSS() as rss:
        if fmt == "sharded":
            ShardedWriter(Path(root), info, keep_last=1).save(1, model, optimizer, None, {"step": 1})
        else:
            weights, optimizer_state = checkpoint_states(model, optimizer, info)
            if info.is_main:
                ckpt.save_checkpoint(Path(root), 1, model, None, {"step": 1, "optimizer": optimizer_state}, state_dict=weights)
            del weights, optimizer_state
            barrier(info)
    parameters = sum(p.numel() for p in model.parameters())
    out[rank] = {"format": fmt, "rank": rank, "parameters": parameters, "rss_before_mb": rss.before, "save_increase_mb": rss.peak - rss.before}
    dist.destroy_process_group()


def measure(fmt: str, hidden: int, layers: int) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from spawn_helpers import free_port

    with tempfile.TemporaryDirectory() as root, mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_rank, args=(free_port(), fmt, hidden, layers, root, out), nprocs=2, start_method="spawn")
        return [out[rank] for rank in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [row for fmt in ("full", "sharded") for row in measure(fmt, args.hidden, args.layers)]
    print(f"model: hidden {args.hidden}, {args.layers} layers, vocabulary 151,936: {rows[0]['parameters'] / 1e6:.0f}M parameters (fp32, AdamW)")
    print("| format | rank | RSS before save (MiB) | peak increase during save (MiB) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['format']} | {row['rank']} | {row['rss_before_mb']:.0f} | {row['save_increase_mb']:.0f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
