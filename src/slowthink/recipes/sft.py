"""The SFT recipe (``slowthink sft``): long-CoT supervised fine-tuning, loss on response tokens.

    for step: take a batch -> token-mean cross-entropy over response tokens -> AdamW step
              -> log -> checkpoint

The demo uses it as the cold start before RL (paper sections 4.1 and 4.4).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from slowthink.config import ConfigError, StrictConfig
from slowthink.data.long_cot import DataStats, answer_token_index, fit_to_length, incorrect_traces, trace_rejection
from slowthink.data.problems import DataError
from slowthink.data.prompts import TEMPLATE_NAMES
from slowthink.data.sampler import PromptSampler
from slowthink.data.sft import SFTExample, encode_sft_example
from slowthink.data.sft_tables import check_sft_columns, load_sft_table
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.recipes.common_config import ModelConfig, RunConfig, TinyTaskConfig
from slowthink.rewards.checkers import make_checker
from slowthink.tracking import TrackingConfig
from slowthink.training import checkpoint as ckpt
from slowthink.training.batch import build_sequence_batch, split_batch
from slowthink.training.distributed import (
    DistInfo,
    DistributedConfig,
    all_reduce_sum,
    barrier,
    checkpoint_states,
    shards_over_ranks,
    wrap_model,
)
from slowthink.training.logprobs import forward_logprobs, model_device
from slowthink.training.optim import OptimConfig, build_optimizer, build_scheduler, warmup_warning
from slowthink.training.packing import pack_examples, rank_share
from slowthink.training.run_dir import RunStart
from slowthink.training.run_setup import load_trainer_policy, run_outputs, run_training, seed_everything
from slowthink.training.sharded_checkpoint import load_sharded, sharded_writer


class SFTDataConfig(StrictConfig):
    source: Literal["tiny", "dataset", "jsonl"] = "tiny"
    """"tiny": the synthetic task's cold-start mix; "dataset" (or its older name "jsonl"): prompt/response or
    messages rows from train_file."""
    train_file: str | None = None
    """Prompt/response or chat-messages rows (data.source=dataset): a .jsonl/.json/.parquet/.arrow/.csv file,
    a dataset folder (DIR@SPLIT) or a Hub id OWNER/NAME[:CONFIG][@SPLIT] (docs/data.md)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Which columns hold the row's fields, e.g. {prompt: instruction, response: output} or {messages:
    conversations}; unmapped fields use their own names."""
    template: str = "chat"
    """Prompt template the prompts are rendered with (slowthink.data.prompts)."""
    tiny: TinyTaskConfig = TinyTaskConfig()
    tiny_size: int = 4000
    """Demonstrations drawn from the tiny task."""
    tiny_all_think: bool = False
    """Tiny cold start: every demonstration thinks (True), or the feature-tied mix (False)."""
    mask_tool_outputs: bool = False
    """Zero the loss on what the interpreter inserted (a row's tool_spans, else its output
    blocks after the fence); the paper kept it in the loss."""
    min_response_tokens: int = 0
    """Long-CoT cold start (section 4.1, data/long_cot.py): keep responses of this many tokens ..."""
    max_response_tokens: int | None = None
    """... and at most this many (null: no upper bound)."""
    check_answers: Literal["none", "exact", "math"] = "none"
    """... whose final answer the checker accepts against the row's "answer" ("none": no check)."""
    max_length: int | None = None
    """Max tokens of prompt + response. A longer example is dropped, or kept up to the limit
    with the loss zeroed from its answer on ("mask"); never trained cut off. Both counted."""
    truncation: Literal["drop", "mask"] = "drop"
    """What happens to an example longer than max_length: drop, or mask (see above)."""
    packing: bool = False
    """Pack examples into rows of max_length tokens (block-diagonal attention, per-example
    positions): the same loss as unpacked, without the padding (training/packing.py)."""

    @model_validator(mode="after")
    def _check(self) -> SFTDataConfig:
        if self.packing and not self.max_length:
            raise ValueError("data.packing=true needs data.max_length (the packed row length)")
        if self.template not in TEMPLATE_NAMES:
            raise ValueError(f"template '{self.template}' unknown; allowed: {', '.join(TEMPLATE_NAMES)}")
        if self.source != "tiny" and not self.train_file:
            raise ValueError(f"data.source={self.source} needs data.train_file")
        check_sft_columns(self.columns)
        return self


class SFTTrainConfig(StrictConfig):
    steps: int = Field(default=600, ge=1)
    """At least 1 each: 0 used to crash mid-run with a bare ValueError (or run no step at all)."""
    batch_size: int = Field(default=64, ge=1)
    """sequences per optimizer step (over all ranks)"""
    micro_batch_size: int = Field(default=64, ge=1)
    """Sequences per forward/backward (accumulated up to batch_size; never changes the update)."""
    save_every: int = Field(default=200, ge=1)
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 1
    """Newest checkpoints kept on disk."""


# Defaults live on subclasses, not on default instances: a partial override such as
# ``optim.lr=...`` then keeps the other SFT defaults instead of falling back to the base class's.
class SFTRunConfig(RunConfig):
    output_dir: str = "runs/sft"
    """Every SFT run writes here: config.yaml, metrics.jsonl, checkpoints/."""


class SFTOptimConfig(OptimConfig):
    lr: float = 2e-3
    """Peak learning rate (the tiny cold start's)."""
    schedule: Literal["constant", "cosine"] = "cosine"
    """After warm-up: cosine decay by default."""
    warmup_steps: int = 20
    """Optimizer steps of linear warm-up from 0."""


class SFTConfig(StrictConfig):
    run: SFTRunConfig = SFTRunConfig()
    """Where the run writes, its seed, threads, progress and overwrite policy."""
    model: ModelConfig = ModelConfig()
    """The model: path, dtype, memory plan."""
    data: SFTDataConfig = SFTDataConfig()
    """Training rows: source, template, long-CoT filter, max length, packing (section 4.1)."""
    optim: SFTOptimConfig = SFTOptimConfig()
    """AdamW and its schedule."""
    train: SFTTrainConfig = SFTTrainConfig()
    """Steps, batch sizes and checkpoint cadence."""
    distributed: DistributedConfig = DistributedConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.model.lora.enabled and self.distributed.strategy == "fsdp":
            raise ValueError("model.lora trains with distributed.strategy=ddp only (FSDP shards are not adapted)")
        return self


def load_examples(config: SFTDataConfig, tokenizer: Any, seed: int) -> tuple[list[SFTExample], DataStats]:
    """Encoded examples after the long-CoT filter and the max-length policy, with their counts."""
    if config.source == "tiny":
        task = ArithmeticTask(**config.tiny.model_dump())
        rows = [(r["prompt"], r["response"], r["answer"], None) for r in task.sft_rows(config.tiny_size, seed, all_think=config.tiny_all_think)]
    else:
        rows = load_sft_table(config.train_file, config.columns)
    stats = DataStats(rows=len(rows))
    wrong = [False] * len(rows)
    if config.check_answers != "none":
        checker = make_checker(config.check_answers)
        try:
            wrong = incorrect_traces(checker, [a for _, _, a, _ in rows], [r for _, r, _, _ in rows])
        finally:
            checker.close()
    examples = []
    for (prompt, response, _, tool_spans), is_wrong in zip(rows, wrong):
        example = encode_sft_example(tokenizer, prompt, response, config.template, config.mask_tool_outputs, tool_spans)
        reason = "incorrect" if is_wrong else trace_rejection(len(example.response_ids) - 1, config.min_response_tokens, config.max_response_tokens)
        if reason is None and config.max_length is not None:
            answer_at = answer_token_index(tokenizer, response, tool_spans)
            fitted = fit_to_length(example, config.max_length, config.truncation, answer_at)
            reason = "truncated" if fitted is None else None
            stats.truncated_masked += fitted is not None and fitted is not example
            example = fitted
        if reason is not None:
            stats.drop(reason)
            continue
        examples.append(example)
    stats.kept = len(examples)
    if not examples:
        raise DataError(f"no SFT example left after the filters: {stats.metrics()}")
    return examples, stats


@dataclass(frozen=True)
class SFTStepSettings:
    """How ``sft_step`` splits and clips a step: fixed for the run (``from_config``)."""

    micro_batch_size: int  # examples per forward, or packed rows with pack_length
    grad_clip: float  # max gradient norm; 0 = no clipping
    pad_id: int
    pack_length: int = 0  # pack the examples into rows of this many tokens; 0 = pad each

    @classmethod
    def from_config(cls, config: SFTConfig, pad_id: int) -> SFTStepSettings:
        pack_length = config.data.max_length if config.data.packing else 0
        return cls(config.train.micro_batch_size, config.optim.grad_clip, pad_id, pack_length)


def sft_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    examples: list[SFTExample],
    settings: SFTStepSettings,
    info: DistInfo,
) -> dict[str, float]:
    """One optimizer step: token-mean negative log-likelihood over the step's response tokens.

    ``examples`` is the whole step's batch, the same on every rank; each rank trains its own
    share (``micro_batch_logprobs``). With ``settings.pack_length`` the examples are packed into
    rows (micro-batches count rows).
    """
    num_tokens = float(sum(sum(e.loss_mask) for e in examples))
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    micro_batches = micro_batch_logprobs(model, examples, settings.micro_batch_size, settings.pad_id, settings.pack_length, info)
    for logprobs_BT, loss_mask_BT in micro_batches:
        loss = -(logprobs_BT * loss_mask_BT).sum() / num_tokens
        (loss * info.world_size).backward()
        total += float(loss.detach())
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip if settings.grad_clip > 0 else float("inf"))
    optimizer.step()
    scheduler.step()
    return {"loss": all_reduce_sum(total, info), "grad_norm": float(norm), "lr": scheduler.get_last_lr()[0], "tokens": num_tokens}


def micro_batch_logprobs(
    model: torch.nn.Module, examples: list[SFTExample], micro_batch_size: int, pad_id: int, pack_length: int, info: DistInfo = DistInfo()
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logprobs_BT, loss_mask_BT) per micro-batch of this rank's share of ``examples``,
    padded or packed, on the model's device.

    Every rank runs as many micro-batches (DDP and FSDP pair their collectives by count):
    unpacked, each takes an equal slice of the examples; packed, each packs the whole batch
    the same way and takes every world-th row, empty rows evening out the count
    (training/packing.py).
    """
    device = model_device(model)  # rows are built on the CPU; each micro-batch moves to the model
    if pack_length:
        packed = pack_examples(
            [e.prompt_ids for e in examples], [e.response_ids for e in examples], [e.loss_mask for e in examples], pack_length, pad_id
        )
        packed = rank_share(packed, info.rank, info.world_size, pad_id)
        for start in range(0, len(packed), micro_batch_size):
            micro = packed.select(slice(start, start + micro_batch_size)).trimmed()
            mask = micro.attention_mask(next(model.parameters()).dtype).to(device)
            ids_RL, positions_RL = micro.input_ids_RL.to(device), micro.position_ids_RL.to(device)
            logprobs_RT, _ = forward_logprobs(model, ids_RL, mask, position_ids_BL=positions_RL)
            yield logprobs_RT, micro.loss_mask_RT.to(device)
        return
    per_rank = len(examples) // info.world_size
    examples = examples[info.rank * per_rank : (info.rank + 1) * per_rank]
    prompts, responses, masks = [e.prompt_ids for e in examples], [e.response_ids for e in examples], [e.loss_mask for e in examples]
    for micro in split_batch(build_sequence_batch(prompts, responses, masks, pad_id), micro_batch_size):
        micro = micro.trimmed().to(device)
        logprobs_BT, _ = forward_logprobs(model, micro.input_ids_BL, micro.attention_mask_BL)
        yield logprobs_BT, micro.loss_mask_BT


def run_sft(config: SFTConfig, resume: bool = False) -> Path:
    """Fine-tune; returns the run directory (its last checkpoint is the model)."""
    return run_training(config, resume, train_sft)


def train_sft(config: SFTConfig, start_at: RunStart, info: DistInfo) -> Path:
    """The SFT loop in a claimed run directory (training/run_dir.py)."""
    run_dir = Path(config.run.output_dir)
    seed_everything(config.run)  # threads, then Python's, NumPy's and torch's seeds (training/run_setup.py)
    # With its memory plan; under FSDP on several ranks, on the CPU on rank 0 and empty on the others.
    empty = shards_over_ranks(info, config.distributed)
    model, tokenizer = load_trainer_policy(config.model, config.distributed, info, ranks_load_empty=empty)
    examples, data_stats = load_examples(config.data, tokenizer, config.run.seed)
    if info.is_main:
        print(
            f"[sft] {data_stats.kept} of {data_stats.rows} examples kept; dropped {data_stats.dropped or 'none'}, answer-masked {data_stats.truncated_masked}",
            flush=True,
        )
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
    wrapped = wrap_model(model, info, config.distributed, optimizer)
    if start_at.checkpoint is not None:
        load_sharded(start_at.checkpoint, wrapped, optimizer)  # a sharded checkpoint's weights, into the shards
    writer = sharded_writer(run_dir, info, config.distributed, config.train.keep_checkpoints, wrapped)
    model.train()
    tracker, progress = run_outputs(config, "sft", start, ("loss", "lr"), info)
    step_settings = SFTStepSettings.from_config(config, tokenizer.pad_token_id)
    for step in range(start, config.train.steps):
        # Every rank draws the same batch; sft_step trains this rank's share of it.
        indices = sampler.take(config.train.batch_size)
        metrics = sft_step(wrapped, optimizer, scheduler, [examples[i] for i in indices], step_settings, info)
        if step == 0:
            metrics.update(data_stats.metrics())  # the data filter's counts, once, in the first row
        if info.is_main:
            tracker.log(metrics, step + 1)
            progress.update(step + 1, metrics)
        if writer is not None and ((step + 1) % config.train.save_every == 0 or step + 1 == config.train.steps):
            # Every rank writes its own shards (distributed.checkpoint_format, docs/scale.md).
            state = {k: v for k, v in ckpt.trainer_state(step + 1, optimizer, scheduler, sampler).items() if k != "optimizer"}
            writer.save(step + 1, wrapped, optimizer, tokenizer, state)
        elif (step + 1) % config.train.save_every == 0 or step + 1 == config.train.steps:
            # Full weights and optimizer state on rank 0 (gathered from the shards under FSDP).
            weights, optimizer_state = checkpoint_states(wrapped, optimizer, info)
            if info.is_main:
                state = {**ckpt.trainer_state(step + 1, optimizer, scheduler, sampler), "optimizer": optimizer_state}
                ckpt.save_checkpoint(run_dir, step + 1, model, tokenizer, state, keep_last=config.train.keep_checkpoints, state_dict=weights)
            barrier(info)
    if writer is not None:
        writer.finish()  # an asynchronous write's checkpoint is published before the run ends
    progress.close()
    if tracker is not None:
        tracker.close()
    return run_dir
