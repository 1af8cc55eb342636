"""The ``rl``, ``sft`` and ``demo`` commands: parse a YAML config plus overrides, run the recipe.

Must not import torch, transformers or a recipe at module level: the recipe and its config
are imported inside each command, so ``import slowthink.cli`` stays light.

Errors are classified once, in cli/errors.py: a user's mistake (a bad config key, a malformed
data row, a missing model path, a run directory another run holds or that cannot be written,
a damaged checkpoint) prints one clear message and exits 2; a full disk says "no space left on
PATH" and exits 1; never a traceback. Ctrl-C says which step was last saved and prints the
exact command that resumes, then exits 130.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import typer

from slowthink.cli.command_config import print_config
from slowthink.config.load import split_config_argument


def resume_command(command: str, config: Path | None, overrides: list[str]) -> str:
    """The command line that continues this run."""
    parts = ["slowthink", command, *([str(config)] if config is not None else []), *overrides, "--resume"]
    return shlex.join(parts)


def interrupted(run_dir: Path, command: str) -> None:
    """After Ctrl-C: what is on disk, and how to continue (exit 130, as for SIGINT)."""
    from slowthink.training.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    if latest is None:
        saved = f"interrupted: no checkpoint was saved yet in {run_dir}"
    else:
        saved = f"interrupted: the last checkpoint is {latest.name} in {run_dir / 'checkpoints'}; later steps are lost"
    print(f"\n{saved}\nresume with: {command}", file=sys.stderr, flush=True)
    raise typer.Exit(130)


def train(config_class, run, config: Path | None, overrides: list[str] | None, resume: bool, command: str = "rl", show_config: bool = False) -> None:
    """Load the config (YAML + overrides) and run the recipe. Ctrl-C is handled here, as it
    needs the run directory; every other error reaches ``guarded`` (cli/errors.py)."""
    from slowthink.config import load_config
    from slowthink.recipes.preflight import check_runnable

    config, overrides = split_config_argument(config, overrides)
    run_dir = None
    try:
        loaded = load_config(config_class, config, overrides)
        if show_config:
            print_config(loaded)
        check_runnable(loaded)  # every reason it cannot run on this machine, at once (recipes/preflight.py)
        run_dir = Path(loaded.run.output_dir)
        run_dir = run(loaded, resume=resume)
    except KeyboardInterrupt:
        if run_dir is None:
            raise typer.Exit(130) from None
        interrupted(run_dir, resume_command(command, config, overrides))
    if os.environ.get("RANK", "0") == "0":  # once under torchrun, not once per rank
        print(f"run written to {run_dir}")


def rl_cli(
    config: Path | None = typer.Argument(None, help="YAML config (e.g. configs/tiny_rl.yaml); defaults apply without one."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. kl.mode=cosine rollout.temperature=1.2"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's last checkpoint."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """RL with verifiable rewards (GRPO / Dr. GRPO / RLOO / REINFORCE++, KL schedules, length strategies)."""
    from slowthink.recipes.rl import run_rl
    from slowthink.recipes.rl_config import RLConfig

    train(RLConfig, run_rl, config, overrides, resume, command="rl", show_config=show_config)


def sft_cli(
    config: Path | None = typer.Argument(None, help="YAML config (e.g. configs/tiny_sft.yaml)."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted overrides, e.g. train.steps=100 data.train_file=x.jsonl"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's last checkpoint."),
    show_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
) -> None:
    """Supervised fine-tuning on prompt/response or chat-message JSONL (loss on response tokens)."""
    from slowthink.recipes.sft import SFTConfig, run_sft

    train(SFTConfig, run_sft, config, overrides, resume, command="sft", show_config=show_config)


def demo_cli(
    seed: int = typer.Option(0, help="Seed of the model, data and sampling (the claim holds for 0, 1, 2)."),
    out: Path = typer.Option(Path("runs/demo"), help="Output directory."),
    sft: list[str] | None = typer.Option(None, help="Override for the SFT stage (repeatable), e.g. --sft train.steps=300"),
    rl: list[str] | None = typer.Option(None, help="Override for the RL stage (repeatable), e.g. --rl train.steps=10"),
) -> None:
    """The paper's pipeline in miniature on the tiny default: SFT cold start -> RL -> report."""
    from slowthink.recipes.demo import run_demo

    run_demo(out / f"seed{seed}", seed=seed, sft_overrides=sft or [], rl_overrides=rl or [])  # errors: cli/errors.py
