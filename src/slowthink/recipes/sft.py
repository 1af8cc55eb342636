"""The SFT recipe (``slowthink sft``): long-CoT supervised fine-tuning, loss on response tokens.

    for step: take a batch -> token-mean cross-entropy over response tokens -> AdamW step
              -> log -> checkpoint

The demo uses it as the cold start before RL (paper sections 4.1 and 4.4).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Literal

import torch
from pydantic import model_validator

from slowthink.config import ConfigError, StrictConfig
from slowthink.data.sampler import PromptSampler
from slowthink.data.sft import SFTExample, encode_sft_example, load_sft_rows
from slowthink.modeling import load_model_and_tokenizer, set_memory_plan, set_torch_threads
from slowthink.prompts import TEMPLATE_NAMES
from slowthink.recipes.common_config import ModelConfig, RunConfig, TinyTaskConfig
from slowthink.tiny import ArithmeticTask
from slowthink.training import checkpoint as ckpt
from slowthink.training.batch import build_sequence_batch, split_batch
from slowthink.training.distributed import DistInfo, DistributedConfig, all_reduce_sum, barrier, checkpoint_states, init_distributed, wrap_model
from slowthink.training.logprobs import forward_logprobs
from slowthink.training.optim import OptimConfig, build_optimizer, build_scheduler, warmup_warning
from slowthink.training.run_dir import RunStart, claim_run_dir
from slowthink.tracking import StepProgress, TrackingConfig, build_tracker


class SFTDataConfig(StrictConfig):
    # "tiny": the synthetic task's cold-start mix; "jsonl": prompt/response or messages rows.
    source: Literal["tiny", "jsonl"] = "tiny"
    train_file: str | None = None
    template: str = "chat"
    tiny: TinyTaskConfig = TinyTaskConfig()
    tiny_size: int = 4000
    # Tiny cold start: every demonstration thinks (True), or the feature-tied mix (False).
    tiny_all_think: bool = False
    # Zero the loss on ```output blocks (tool results); the paper kept them in the loss.
    mask_tool_outputs: bool = False

    @model_validator(mode="after")
    def _check(self) -> "SFTDataConfig":
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.source == "jsonl" and not self.train_file:
            raise ValueError("data.source=jsonl needs data.train_file")
        return self


class SFTTrainConfig(StrictConfig):
    steps: int = 600
    batch_size: int = 64  # sequences per optimizer step (over all ranks)
    micro_batch_size: int = 64
    save_every: int = 200
    keep_checkpoints: int = 1


# Defaults live on subclasses, not on default instances: a partial override such as
# ``optim.lr=...`` then keeps the other SFT defaults instead of falling back to the base class's.
class SFTRunConfig(RunConfig):
    output_dir: str = "runs/sft"


class SFTOptimConfig(OptimConfig):
    lr: float = 2e-3
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = 20


class SFTConfig(StrictConfig):
    run: SFTRunConfig = SFTRunConfig()
    model: ModelConfig = ModelConfig()
    data: SFTDataConfig = SFTDataConfig()
    optim: SFTOptimConfig = SFTOptimConfig()
    train: SFTTrainConfig = SFTTrainConfig()
    # DDP or FSDP2 over torchrun's ranks (training/distributed.py).
    distributed: DistributedConfig = DistributedConfig()
    tracking: TrackingConfig = TrackingConfig()


def load_examples(config: SFTDataConfig, tokenizer, seed: int) -> list[SFTExample]:
    if config.source == "tiny":
        task = ArithmeticTask(**config.tiny.model_dump())
        rows = [(r["prompt"], r["response"]) for r in task.sft_rows(config.tiny_size, seed, all_think=config.tiny_all_think)]
    else:
        rows = load_sft_rows(config.train_file)
    return [encode_sft_example(tokenizer, prompt, response, config.template, config.mask_tool_outputs) for prompt, response in rows]


def sft_step(model, optimizer, scheduler, examples: list[SFTExample], micro_batch_size: int, grad_clip: float, pad_id: int, info: DistInfo) -> dict[str, float]:
    """One optimizer step: token-mean negative log-likelihood over all ranks' response tokens."""
    batch = build_sequence_batch([e.prompt_ids for e in examples], [e.response_ids for e in examples], [e.loss_mask for e in examples], pad_id)
    num_tokens = all_reduce_sum(float(batch.num_tokens), info)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for micro in split_batch(batch, micro_batch_size):
        micro = micro.trimmed()
        logprobs_BT, _ = forward_logprobs(model, micro.input_ids_BL, micro.attention_mask_BL)
        loss = -(logprobs_BT * micro.loss_mask_BT).sum() / num_tokens
        (loss * info.world_size).backward()
        total += float(loss.detach())
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    scheduler.step()
    return {"loss": all_reduce_sum(total, info), "grad_norm": float(norm), "lr": scheduler.get_last_lr()[0], "tokens": num_tokens}


def run_sft(config: SFTConfig, resume: bool = False) -> Path:
    """Fine-tune; returns the run directory (its last checkpoint is the model)."""
    info = init_distributed()
    with claim_run_dir(config, resume, info) as start:
        return train_sft(config, start, info)


def train_sft(config: SFTConfig, start_at: RunStart, info: DistInfo) -> Path:
    """The SFT loop in a claimed run directory (training/run_dir.py)."""
    run_dir = Path(config.run.output_dir)
    set_torch_threads(config.run.torch_threads or None)
    random.seed(config.run.seed)
    torch.manual_seed(config.run.seed)
    model, tokenizer = load_model_and_tokenizer(config.model.path, config.model.dtype, config.model.device)
    set_memory_plan(model, config.model.memory_plan)  # chunked log-probs, checkpointing, autocast
    examples = load_examples(config.data, tokenizer, config.run.seed)
    if config.train.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size ({config.train.batch_size}) must divide evenly over {info.world_size} ranks")
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.optim, total_steps=config.train.steps)
    if info.is_main and (warning := warmup_warning(config.optim, config.train.steps)):
        print(f"[sft] {warning}", file=sys.stderr, flush=True)
    sampler = PromptSampler(len(examples), seed=config.run.seed)
    start = 0
    if start_at.checkpoint is not None:
        start = ckpt.restore_training(start_at.checkpoint, model, optimizer, scheduler, sampler)["step"]
    trainer = wrap_model(model, info, config.distributed, optimizer)
    model.train()
    tracker = build_tracker(config.tracking, run_dir, config.model_dump(mode="json"), resume=start > 0, last_step=start) if info.is_main else None
    progress = StepProgress("sft", config.train.steps, start, ("loss", "lr"), enabled=config.run.progress and info.is_main)
    per_rank = config.train.batch_size // info.world_size
    for step in range(start, config.train.steps):
        # Every rank draws the same indices and takes its own share.
        indices = sampler.take(config.train.batch_size)[info.rank * per_rank : (info.rank + 1) * per_rank]
        metrics = sft_step(trainer, optimizer, scheduler, [examples[i] for i in indices], config.train.micro_batch_size, config.optim.grad_clip, tokenizer.pad_token_id, info)
        if info.is_main:
            tracker.log(metrics, step + 1)
            progress.update(step + 1, metrics)
        if (step + 1) % config.train.save_every == 0 or step + 1 == config.train.steps:
            # Full weights and optimizer state on rank 0 (gathered from the shards under FSDP).
            weights, optimizer_state = checkpoint_states(trainer, optimizer, info)
            if info.is_main:
                state = {**ckpt.trainer_state(step + 1, optimizer, scheduler, sampler), "optimizer": optimizer_state}
                ckpt.save_checkpoint(run_dir, step + 1, model, tokenizer, state, keep_last=config.train.keep_checkpoints, state_dict=weights)
            barrier(info)
    progress.close()
    if tracker is not None:
        tracker.close()
    return run_dir
