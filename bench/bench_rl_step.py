"""One RL step, side by side: TRL's GRPOTrainer vs ``slowthink rl`` on the same local model.

    make bench-env            # .venv-bench: torch (pinned) + trl + slowthink, never a project dependency
    OMP_NUM_THREADS=1 .venv-bench/bin/python bench/bench_rl_step.py [--sizes h128-l4,h256-l6] \\
        [--kl 0,0.001] [--steps 5] [--threads 2] [--busy 0] [--frameworks trl,slowthink,trl-bf16,slowthink-bf16]

The benchmark configuration: a Qwen2 of bench/bench_model.py (2,048-token BPE, tied
embeddings), 8 prompts x 8 rollouts x 64 new tokens at T = 1.0 (top-p 1, top-k off), one
optimizer step per RL step over all 64 sequences in one micro-batch, fp32, no gradient
checkpointing, KL off and at 0.001 (k3 in the loss for both); ``trl-bf16`` and
``slowthink-bf16`` run both in bf16 (TRL's ``bf16=True``; slowthink's bf16 rollouts and bf16
autocast), fp32 master weights in both. Prompts are the tiny task's
questions (no template); rewards are cheap functions, so both steps are generation plus
update.

Each framework runs in its own fresh interpreter (so peak RSS is its own) for 1 warm-up step
plus ``--steps``; the parent samples /proc every 0.1 s and charges each step the cores
*other* processes kept busy during it. A contaminated step (> 0.2 other cores, see
load_meter.py) is not used when at least 2 clean steps exist, and the run is repeated once
when fewer do; otherwise the medians are flagged CONTAMINATED. ``--busy N`` starts N
competing busy-loop processes for the whole run (bench/RESULTS.md, "A busy machine").

Per step: seconds, generation seconds and tokens/s (sampled tokens), train-part seconds
(step minus generation: reward, log-probs, reference, update) and update tokens/s (prompt +
completion tokens of the 64 sequences over the train part), peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_model import build, flops_per_token, matmul_peak_gflops  # noqa: E402
from cpu_usage import busy_jiffies, tree_jiffies  # noqa: E402
from load_meter import HZ, THRESHOLD  # noqa: E402

PROMPTS, ROLLOUTS, NEW_TOKENS = 8, 8, 64


def _questions(count: int = 64) -> list[str]:
    from slowthink.data.tiny_task import ArithmeticTask

    return [p.problem for p in ArithmeticTask().problems(count, seed=0, heldout=False)]


# ----------------------------------------------------------------------------- children


def child_trl(model_dir: str, kl: float, steps: int, threads: int, out_dir: str, bf16: bool = False) -> list[dict]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    records: list[dict] = []
    current: dict = {}
    generate = model.generate

    def timed_generate(*args, **kwargs):
        start = time.perf_counter()
        out = generate(*args, **kwargs)
        prompt = kwargs.get("input_ids", args[0] if args else None)
        new = out[:, prompt.shape[1] :]
        ended = (new == tokenizer.eos_token_id).long().cumsum(-1)
        sampled = int(((ended == 0) | ((ended == 1) & (new == tokenizer.eos_token_id))).sum())
        current["gen_s"] = current.get("gen_s", 0.0) + time.perf_counter() - start
        current["gen_tokens"] = current.get("gen_tokens", 0) + sampled
        mask = kwargs.get("attention_mask")
        current["update_tokens"] = current.get("update_tokens", 0) + sampled + int(mask.sum() if mask is not None else prompt.numel())
        return out

    model.generate = timed_generate

    class StepTimes(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            current.clear()
            current["start"] = time.time()

        def on_step_end(self, args, state, control, **kw):
            current["end"] = time.time()
            records.append(dict(current))

    def reward(completions, **kwargs):  # cheap and varied, so advantages are non-zero
        return [float(len(c) % 7) for c in completions]

    config = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=PROMPTS * ROLLOUTS,
        num_generations=ROLLOUTS,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=kl,
        learning_rate=1e-5,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=bf16,  # trl-bf16: accelerate's bf16 autocast around generation and training
        gradient_checkpointing=False,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    dataset = Dataset.from_list([{"prompt": q} for q in _questions()])
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.add_callback(StepTimes())
    trainer.train()
    return records


def child_slowthink(model_dir: str, kl: float, steps: int, threads: int, out_dir: str, bf16: bool = False) -> list[dict]:
    import slowthink.recipes.rl as rl
    from slowthink.config import load_config
    from slowthink.recipes.rl_config import RLConfig
    from slowthink.tracking import read_metrics

    starts: list[dict] = []
    roll_out = rl.roll_out

    def timed_roll_out(generator, prompts, config, max_length, seed, rewards=None):
        record = {"start": time.time()}
        completions = roll_out(generator, prompts, config, max_length, seed, rewards)
        record["gen_tokens"] = sum(len(c.token_ids) for c in completions)
        record["update_tokens"] = record["gen_tokens"] + sum(len(prompts.prompt_ids[c.prompt_index]) for c in completions)
        starts.append(record)
        return completions

    rl.roll_out = timed_roll_out
    # KL off as TRL's beta=0: no reference model at all (slowthink's KL monitor would add one).
    kl_overrides = ["kl.mode=off", "kl.monitor=false"] if kl == 0 else ["kl.mode=fixed", f"kl.coef={kl}", "kl.placement=loss", "kl.estimator=k3"]
    # slowthink-bf16: bf16 rollouts (fp32 master weights) and the update under bf16 autocast.
    bf16_overrides = ["rollout.generation_dtype=bfloat16", "model.autocast=bfloat16"] if bf16 else []
    config = load_config(
        RLConfig,
        None,
        [
            f"run.output_dir={out_dir}/run",
            f"run.torch_threads={threads}",
            "run.progress=false",
            f"model.path={model_dir}",
            "data.source=tiny",
            "data.template=plain",
            "data.tiny_train_size=64",
            "data.tiny_eval_size=8",
            f"rollout.prompts_per_step={PROMPTS}",
            f"rollout.rollouts_per_prompt={ROLLOUTS}",
            f"rollout.max_length_schedule=[[0,{NEW_TOKENS}]]",
            "rollout.temperature=1.0",
            "rollout.top_p=1.0",
            "rollout.stop=[]",
            "reward.checker=exact",
            "reward.weights={correctness: 1.0, length: 1.0}",
            "algorithm.drop_uniform_groups=false",
            f"update.micro_batch_size={PROMPTS * ROLLOUTS}",
            "optim.lr=1e-5",
            f"train.steps={steps}",
            "train.eval_every=0",
            "train.eval_max_problems=1",
            "train.save_every=1000",
            *kl_overrides,
            *bf16_overrides,
        ],
    )
    rl.run_rl(config)
    rows = read_metrics(Path(out_dir) / "run" / "metrics.jsonl")
    records = []
    for record, row in zip(starts, [r for r in rows if "time/step_s" in r]):
        records.append({**record, "end": record["start"] + row["time/step_s"], "gen_s": row["time/generate_s"]})
    return records


# ----------------------------------------------------------------------------- parent


class Sampler(threading.Thread):
    """(time, all CPUs' busy jiffies, the child tree's jiffies) every 0.1 s."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.samples, self.running = root, [], True

    def run(self) -> None:
        while self.running:
            self.samples.append((time.time(), busy_jiffies(), tree_jiffies(self.root)))
            time.sleep(0.1)

    def other_cores(self, start: float, end: float) -> float:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, busy0, own0), (t1, busy1, own1) = inside[0], inside[-1]
        return max((busy1 - busy0) - (own1 - own0), 0) / HZ / max(t1 - t0, 1e-9)


BUSY = 0  # --busy: our own competing processes, not counted as contamination
SPIN = False  # --spin: slowthink's OpenMP threads spin, as before the CLI set OMP_WAIT_POLICY=PASSIVE


def run_child(framework: str, model_dir: Path, kl: float, steps: int, threads: int) -> dict:
    python = sys.executable
    with tempfile.TemporaryDirectory() as out_dir:
        result = Path(out_dir) / "result.json"
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLOWTHINK_TORCH_THREADS", "OMP_WAIT_POLICY")}
        if threads:  # 0 = each framework's own default (slowthink's leaves busy cores alone)
            env.update(OMP_NUM_THREADS=str(threads), SLOWTHINK_TORCH_THREADS=str(threads))
        if framework.startswith("slowthink") and not SPIN:
            env["OMP_WAIT_POLICY"] = "PASSIVE"  # what the slowthink CLI sets before torch loads
        command = [
            python,
            __file__,
            "--child",
            framework,
            "--model-dir",
            str(model_dir),
            "--kl",
            str(kl),
            "--steps",
            str(steps + 1),
            "--threads",
            str(threads),
            "--result",
            str(result),
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = Sampler(process.pid)
        sampler.start()
        _, stderr = process.communicate()
        sampler.running = False
        if process.returncode != 0:
            raise SystemExit(f"{framework} child failed:\n{stderr[-3000:]}")
        data = json.loads(result.read_text())
    for record in data["steps"]:
        record["other_cores"] = sampler.other_cores(record["start"], record["end"])
    data["steps"] = data["steps"][1:]  # the warm-up step
    return data


def summarise(framework: str, model_dir: Path, kl: float, steps: int, threads: int, peak: float) -> dict:
    data = run_child(framework, model_dir, kl, steps, threads)
    clean = [s for s in data["steps"] if s["other_cores"] <= THRESHOLD + BUSY]
    if len(clean) < 2:  # repeat a contaminated run once
        again = run_child(framework, model_dir, kl, steps, threads)
        data["steps"] += again["steps"]
        data["peak_rss_mb"] = max(data["peak_rss_mb"], again["peak_rss_mb"])
        clean = [s for s in data["steps"] if s["other_cores"] <= THRESHOLD + BUSY]
    used = clean if len(clean) >= 2 else data["steps"]
    step_s = statistics.median(s["end"] - s["start"] for s in used)
    gen_s = statistics.median(s["gen_s"] for s in used)
    train_s = statistics.median(s["end"] - s["start"] - s["gen_s"] for s in used)
    # Model-FLOPs utilisation against the measured matmul peak: a forward per generated token
    # (attending to ~half the sequence), forward + backward (3 forwards) per trained token.
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    context = NEW_TOKENS / 2 + 8
    gen_flops = statistics.median(s["gen_tokens"] for s in used) * flops_per_token(config, context)
    update_flops = 3 * statistics.median(s["update_tokens"] for s in used) * flops_per_token(config, context)
    return dict(
        gen_mfu=gen_flops / gen_s / 1e9 / peak,
        update_mfu=update_flops / train_s / 1e9 / peak,
        step_s=step_s,
        gen_s=gen_s,
        train_s=train_s,
        gen_tok_s=statistics.median(s["gen_tokens"] / s["gen_s"] for s in used),
        update_tok_s=statistics.median(s["update_tokens"] / (s["end"] - s["start"] - s["gen_s"]) for s in used),
        peak_rss_mb=data["peak_rss_mb"],
        clean=len(clean),
        total=len(data["steps"]),
        other_cores=max(s["other_cores"] for s in used),
    )


def _busy_loop() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="h128-l4,h256-l6")
    parser.add_argument("--kl", default="0,0.001")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per framework (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads; 0 = each framework's default")
    parser.add_argument("--spin", action="store_true", help="slowthink without OMP_WAIT_POLICY=PASSIVE (its OpenMP threads spin while waiting)")
    parser.add_argument("--busy", type=int, default=0, help="competing busy processes during the whole run")
    parser.add_argument("--frameworks", default="trl,slowthink", help="of trl, slowthink, trl-bf16, slowthink-bf16")
    parser.add_argument("--models", default=tempfile.gettempdir())
    parser.add_argument("--child", choices=["trl", "slowthink", "trl-bf16", "slowthink-bf16"])
    parser.add_argument("--model-dir")
    parser.add_argument("--result")
    args = parser.parse_args()

    if args.child:
        runner = child_trl if args.child.startswith("trl") else child_slowthink
        with tempfile.TemporaryDirectory() as out_dir:
            steps = runner(args.model_dir, float(args.kl), args.steps, args.threads, out_dir, bf16=args.child.endswith("-bf16"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.result).write_text(json.dumps({"steps": steps, "peak_rss_mb": peak}))
        return

    global SPIN, BUSY
    SPIN, BUSY = args.spin, args.busy
    busy = [multiprocessing.Process(target=_busy_loop, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    try:
        frameworks = args.frameworks.split(",")
        print(
            f"## RL step: {PROMPTS} prompts x {ROLLOUTS} rollouts x {NEW_TOKENS} new tokens, T=1.0, "
            f"{args.threads or 'default'} torch threads{' (spinning)' if args.spin else ''}, {args.busy} competing busy processes, median of {args.steps} steps\n"
        )
        peak = matmul_peak_gflops(args.threads or os.cpu_count())
        print(f"fp32 matmul peak measured on {args.threads or os.cpu_count()} threads: {peak:.0f} GFLOP/s\n")
        print(
            "| size | KL | framework | s/step | gen s | gen tok/s | gen MFU | train s | update tok/s | update MFU | peak RSS MB | clean steps | other cores (max) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for size in args.sizes.split(","):
            model_dir = build(size, Path(args.models))
            for kl in (float(k) for k in args.kl.split(",")):
                results = {name: summarise(name, model_dir, kl, args.steps, args.threads, peak) for name in frameworks}
                for name, r in results.items():
                    print(
                        f"| {size} | {kl:g} | {name} | {r['step_s']:.3f} | {r['gen_s']:.3f} | {r['gen_tok_s']:.0f} | "
                        f"{r['gen_mfu']:.0%} | {r['train_s']:.3f} | {r['update_tok_s']:.0f} | {r['update_mfu']:.0%} | {r['peak_rss_mb']:.0f} | "
                        f"{r['clean']}/{r['total']} | {r['other_cores']:.2f} |",
                        flush=True,
                    )
                for suffix in ("", "-bf16"):
                    if {f"trl{suffix}", f"slowthink{suffix}"} <= results.keys():
                        ratio = results[f"trl{suffix}"]["step_s"] / results[f"slowthink{suffix}"]["step_s"]
                        print(
                            f"| {size} | {kl:g} | **TRL{suffix} s/step / slowthink{suffix} s/step** | **{ratio:.2f}x** | | | | | | | | | |",
                            flush=True,
                        )
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        for process in busy:
            process.terminate()


if __name__ == "__main__":
    main()
