"""The ``slowthink plan`` command: a run config's memory per GPU, and what to change if it does not fit (plan.py).

Must not import torch, transformers or a recipe at module level: the config classes load when
the command runs, so ``import slowthink.cli`` stays light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from slowthink.cli.errors import fail

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def parse_memory(text: str) -> float:
    """``80GB``, ``80G``, ``79.6GiB`` or a plain number of GB -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(GiB|GB|G)?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise typer.BadParameter(f"--gpu-memory {text!r}: write it as 80GB or 79.6GiB")
    unit = (match.group(2) or "GB").lower()
    return float(match.group(1)) * (2**30 if unit == "gib" else 1e9)


def run_shape_of(config: Any, gpus: int, prompt_tokens: int):
    """The memory-relevant settings of an RL or SFT config on ``gpus`` GPUs."""
    from slowthink.plan import RunShape

    model, distributed = config.model, config.distributed
    master = DTYPE_BYTES[model.dtype]
    if distributed.strategy == "fsdp" and gpus > 1 and distributed.param_dtype:
        compute = DTYPE_BYTES[distributed.param_dtype]
    elif model.autocast != "none":
        compute = DTYPE_BYTES[model.autocast]
    else:
        compute = master
    common = dict(
        ranks=gpus,
        strategy=distributed.strategy,
        master_bytes=master,
        compute_bytes=compute,
        gradient_checkpointing=model.gradient_checkpointing,
        logprob_chunk=model.logprob_chunk_size,
    )
    if not hasattr(config, "rollout"):  # SFT: one micro-batch of max_length tokens
        train = config.train
        return RunShape(
            **common,
            sequence=config.data.max_length or 4096,
            micro_batch=train.micro_batch_size,
            micro_batches=_ceil(train.batch_size, gpus * train.micro_batch_size),
            sync_every_micro_batch=True,  # sft_step all-reduces at every micro-batch's backward
        )
    rollout = config.rollout
    vllm = rollout.backend == "vllm"
    # Rows of one optimizer step on a rank, before any filter drops some.
    rows = config.prompts_per_update * rollout.rollouts_per_prompt
    return RunShape(
        **common,
        micro_batches=_ceil(rows, gpus * config.update.micro_batch_size),
        reference=config.kl.mode != "off" or config.kl.monitor,
        entropy=config.algorithm.entropy_coef > 0,
        sequence=prompt_tokens + config.loss_constant_length,
        micro_batch=config.update.micro_batch_size,
        vllm=vllm,
        gpu_memory_utilization=rollout.vllm.gpu_memory_utilization if vllm else 0.0,
        tensor_parallel=rollout.vllm.tensor_parallel_size if vllm else 1,
    )


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def plan_cli(
    config: Path = typer.Argument(..., help="An rl or sft config file (YAML)."),
    gpus: int = typer.Option(8, "--gpus", min=1, help="GPUs (ranks) the run trains on, all nodes together."),
    gpu_memory: str = typer.Option("80GB", "--gpu-memory", help="Memory of one GPU, e.g. 80GB (vLLM's share is of this)."),
    prompt_tokens: int = typer.Option(1024, "--prompt-tokens", min=0, help="RL: the longest prompt, added to the longest response."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, as for rl and sft."),
) -> None:
    """Memory per GPU of a run config: training state, reference, activations, logits, vLLM; whether it fits."""
    import yaml

    from slowthink.config import load_config
    from slowthink.plan import advice, estimate, model_shape

    raw = yaml.safe_load(Path(config).read_text()) or {}
    if "rollout" in raw:
        from slowthink.recipes.rl_config import RLConfig as config_class
    else:
        from slowthink.recipes.sft import SFTConfig as config_class
    loaded = load_config(config_class, config, overrides or [])
    try:
        shape = model_shape(loaded.model.path)
    except ValueError as exc:
        fail(str(exc))
    run = run_shape_of(loaded, gpus, prompt_tokens)
    memory = parse_memory(gpu_memory)
    result = estimate(shape, run, memory)
    key = "update.micro_batch_size" if "rollout" in raw else "train.micro_batch_size"
    typer.echo(report(loaded.model.path, shape, run, result, memory, advice(shape, run, memory, micro_batch_key=key)))


def report(name: str, shape, run, result, memory: float, tips: list[str]) -> str:
    gb = 1e9
    lines = [
        f"{name}: {shape.parameters / 1e9:.2f} B parameters; {run.ranks} GPUs ({run.strategy}); T = {run.sequence} tokens, micro-batch {run.micro_batch}",
        "",
        "| per GPU | GB |",
        "|---|---|",
    ]
    lines += [f"| {part} | {value / gb:.1f} |" for part, value in result.parts.items() if value]
    lines += [f"| **update peak** | **{result.update_peak / gb:.1f}** |"]
    if run.vllm:
        lines += [f"| **generation peak** (vLLM KV cache: {result.kv_tokens / 1e3:.0f}k tokens per engine) | **{result.generation_peak / gb:.1f}** |"]
    fits = result.peak <= 0.9 * memory
    lines += ["", f"{'fits' if fits else 'does not fit'} {memory / gb:.0f} GB (with 10% left for the CUDA context and the allocator's slack)"]
    lines += [f"- change: {tip}" for tip in tips]
    return "\n".join(lines)
