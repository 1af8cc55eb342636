"""``slowthink demo``: the paper's pipeline in miniature on the embedded tiny default.

    build the tiny model and task -> SFT cold start -> evaluate held-out
    -> RL (GRPO, on-policy) -> evaluate held-out -> report.md with plots

The cold start mixes thoughts and bare answers (tied to a feature of the problem), so the
SFT model has a reasoning mode it uses only sometimes; RL elicits it (paper sections 3.2
and 5), and held-out accuracy rises together with response length.
"""

from __future__ import annotations

import time
from pathlib import Path

from slowthink.config import load_config, shipped_config_dir
from slowthink.data.problem_sets import load_problem_sets
from slowthink.eval.heldout import evaluate_heldout
from slowthink.models.modeling import load_model_and_tokenizer, set_torch_threads
from slowthink.models.tiny import save_tiny
from slowthink.recipes.common_config import ProblemSourceConfig
from slowthink.recipes.rl import run_rl
from slowthink.recipes.rl_config import RLConfig
from slowthink.recipes.sft import SFTConfig, run_sft
from slowthink.rewards.checkers import make_checker
from slowthink.rollout.factory import hf_engine
from slowthink.training.checkpoint import latest_checkpoint

# Package data, so the demo runs from a wheel install as well as from a checkout.
CONFIG_DIR = shipped_config_dir()


def heldout_accuracy(model_dir: Path, data: ProblemSourceConfig, seed: int, max_tokens: int) -> dict[str, float]:
    """Greedy held-out metrics of a saved model on the tiny task."""
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    _, heldout = load_problem_sets(data, tokenizer, seed)
    return evaluate_heldout(hf_engine(model, tokenizer, batch_size=64), heldout, make_checker("exact"), max_tokens)


def stage(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_demo(
    output_dir: Path, seed: int = 0, sft_overrides: list[str] = (), rl_overrides: list[str] = (), config_dir: Path = CONFIG_DIR
) -> tuple[float, float]:
    """Run the whole pipeline; returns (SFT, RL) held-out accuracy in percent."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    threads = set_torch_threads()
    stage(f"output in {output_dir}, seed {seed}, torch threads {threads}")

    # Both stages' configs are checked before any work: a bad --rl override fails in seconds,
    # not after the SFT stage. The RL config is loaded again once the SFT checkpoint exists.
    base_dir = output_dir / "base"
    sft_config = load_config(
        SFTConfig,
        config_dir / "tiny_sft.yaml",
        [f"run.output_dir={output_dir / 'sft'}", f"run.seed={seed}", f"model.path={base_dir}", "run.overwrite=true", *sft_overrides],
    )

    def rl_stage_config(model_dir: Path) -> RLConfig:
        return load_config(
            RLConfig,
            config_dir / "tiny_rl.yaml",
            [
                f"run.output_dir={output_dir / 'rl'}",
                f"run.seed={seed}",
                f"model.path={model_dir}",
                f"model.optimizer_state={model_dir}",
                "run.overwrite=true",
                *rl_overrides,
            ],
        )

    rl_stage_config(base_dir)

    # 1. The tiny default: a fresh Qwen2-architecture model and character tokenizer.
    base = save_tiny(base_dir, seed=seed)
    stage(f"built the tiny model at {base}")

    # 2. SFT cold start on the mixed thought / bare-answer demonstrations. The demo rebuilds
    # every stage from its new base model, so its stages replace an earlier demo's runs.
    stage(f"SFT cold start: {sft_config.train.steps} steps x {sft_config.train.batch_size}")
    sft_model = latest_checkpoint(run_sft(sft_config))

    # 3. Held-out accuracy of the SFT model (greedy).
    rl_config = rl_stage_config(sft_model)
    max_tokens = rl_config.rollout.max_length_schedule[-1][1]
    sft_metrics = heldout_accuracy(sft_model, rl_config.data, seed, max_tokens)
    stage(f"SFT held-out accuracy {100 * sft_metrics['accuracy']:.1f}%, mean length {sft_metrics['response_length']:.1f} tokens")

    # 4. RL from the SFT model, continuing its optimizer state.
    stage(f"RL: {rl_config.train.steps} steps x {rl_config.rollout.prompts_per_step} prompts x {rl_config.rollout.rollouts_per_prompt} rollouts")
    rl_dir = run_rl(rl_config)

    # 5. Held-out accuracy after RL, then the report.
    rl_metrics = heldout_accuracy(latest_checkpoint(rl_dir), rl_config.data, seed, max_tokens)
    sft_acc, rl_acc = 100 * sft_metrics["accuracy"], 100 * rl_metrics["accuracy"]
    table = [
        ("model", "held-out accuracy", "mean length", "length (correct)", "length (incorrect)", "completion ratio"),
        *[
            (
                name,
                f"{100 * m['accuracy']:.1f}%",
                f"{m['response_length']:.1f}",
                _fmt(m["response_length_correct"]),
                _fmt(m["response_length_incorrect"]),
                f"{m['completion_ratio']:.2f}",
            )
            for name, m in (("SFT cold start", sft_metrics), ("after RL", rl_metrics))
        ],
    ]
    from slowthink.report import write_report

    report = write_report([rl_dir], output_dir, title=f"slowthink demo (seed {seed})", table=table, cold_start=output_dir / "sft")
    stage(f"report: {report} ({time.perf_counter() - started:.0f} s in all)")
    print(f"held-out accuracy: SFT {sft_acc:.1f}% -> RL {rl_acc:.1f}%", flush=True)
    return sft_acc, rl_acc


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.1f}"  # NaN when there is no such response
