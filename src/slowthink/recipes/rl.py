"""The RL recipe (``slowthink rl``): RL with verifiable rewards, read top to bottom.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).

    for step:
        sample prompts -> roll out n per prompt (rewarded as each finishes)
        -> (KL in the reward only) reference log-probs and KL of every row
        -> select / mask -> advantages (- KL penalty) -> the log-probs still missing, of the kept
           rows (reference for a KL in the loss or the monitor; old ones when recomputed)
        -> policy update -> sync weights -> reference reset -> evaluate -> log -> checkpoint

Every factor of the paper's Table 1 and sections 3-4 is a field of ``RLConfig``.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slowthink.algorithms.schedules import kl_coefficient, max_length_at, reference_reset_due
from slowthink.config import ConfigError
from slowthink.data.problem_sets import ProblemSet, load_problem_sets
from slowthink.data.sampler import PromptSampler
from slowthink.eval.heldout import evaluate_heldout
from slowthink.monitors.length_hacking import LengthHackingMonitor
from slowthink.monitors.metrics import rollout_metrics
from slowthink.monitors.no_signal import NoSignalWatch
from slowthink.recipes.rl_config import RLConfig, check_world_size
from slowthink.rewards.functions import RewardRow
from slowthink.rewards.reward import RewardModel, RewardStream, component_means
from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.samples import drop_samples_after, sample_rows, samples_due, write_samples
from slowthink.training import checkpoint as ckpt
from slowthink.training.distributed import (
    DistInfo,
    all_gather_objects,
    barrier,
    checkpoint_states,
    copy_full_weights,
    done_with_reference,
    full_weights,
    init_distributed,
    is_sharded,
    load_device,
    reset_reference,
    shutdown,
    unwrap,
    weights_for_checkpoint,
    wrap_model,
    wrap_reference,
)
from slowthink.training.experience import RowOutcomes, SelectionSettings, gather_outcomes, rollout_sequences, select_training_rows, sequence_kl
from slowthink.training.logprobs import batched_logprobs
from slowthink.training.lora import AdapterOff, is_lora, merged_weights
from slowthink.training.optim import build_optimizer, build_scheduler
from slowthink.training.policy_update import LossSettings, update_policy
from slowthink.training.run_dir import RunStart, claim_run_dir
from slowthink.training.run_setup import load_policy, run_outputs, seed_everything
from slowthink.training.sharded_checkpoint import load_sharded, sharded_writer

PROGRESS_KEYS = ("reward", "accuracy", "response_length", "heldout/accuracy", "kl")
SEED_MODULUS = 2**62  # completion seeds stay within vLLM's int64 (rollout/vllm_backend.py)


@dataclass
class RLState:
    """What a checkpoint must hold besides the weights to continue bit-for-bit."""

    step: int = 0
    sampler: dict[str, int] = field(default_factory=dict)
    reference_reset_at: int = 0  # step of the last reference reset (0 = the initial model)


def build_generator(config: RLConfig, model: Any, tokenizer: Any) -> Any:
    """The rollout engine; a separate copy of the weights when rollouts may be stale.

    With ``rollout.tools=python`` the engine is wrapped in the tool loop: code blocks run in
    the sandbox and their output is spliced in as loss-mask-0 tokens (section 4.4).
    """
    from slowthink.rollout import factory

    if config.rollout.backend == "vllm":
        # A colocated engine built from the same checkpoint as the trainer, in the trainer's
        # dtype; with stale rollouts it keeps a CPU copy of the weights it samples from.
        stale = config.rollout.sync_weights_every > 1
        engine = factory.vllm_engine(
            config.model.path,
            config.rollout.vllm,
            seed=config.run.seed,
            tokenizer=tokenizer,
            dtype=rollout_dtype(config),
            keep_weights_of=model if stale else None,
        )
    else:
        # FSDP: a full copy beside the shards (a sharded forward is collective, and ranks
        # generate different numbers of tokens), synced by gathering after each update.
        shared = config.rollout.sync_weights_every == 1 and config.distributed.strategy != "fsdp"
        engine_model = model if shared else copy.deepcopy(model)
        if not any(p.is_meta for p in engine_model.parameters()):  # an empty copy is filled after the sharding
            engine_model.to(config.model.device)  # FSDP loads on the CPU
        rollout = config.rollout
        engine = factory.hf_engine(
            engine_model, tokenizer, rollout.generation_batch_size or 256, fast=rollout.fast_generation, dtype=rollout.generation_dtype
        )
    if config.rollout.tools == "none":
        return engine
    return factory.with_tools(engine, tokenizer, config.rollout.tool_preset, config.rollout.max_tool_calls)


def rollout_dtype(config: RLConfig) -> str:
    """The vLLM engine's dtype: as set, else the dtype the trainer computes in (fp32 master
    weights under bf16 autocast or FSDP mixed precision roll out in bf16)."""
    if config.rollout.vllm.dtype is not None:
        return config.rollout.vllm.dtype
    if config.model.autocast != "none":
        return config.model.autocast
    if config.distributed.strategy == "fsdp" and config.distributed.param_dtype is not None:
        return config.distributed.param_dtype
    return config.model.dtype


def engine_model(generator: Any) -> Any:
    """What holds the weights a generator samples from (through a tool loop): the HF module,
    vLLM's CPU copy when rollouts may be stale, or None (vLLM on-policy: the trainer's own)."""
    inner = getattr(generator, "generator", generator)
    copy_ = getattr(inner, "weights", None)
    return copy_ if copy_ is not None else getattr(inner, "model", None)


def roll_out(
    generator: Any,
    prompts: ProblemSet,
    config: RLConfig,
    max_length: int,
    seed: int,
    rewards: RewardStream | None = None,
    seeds: tuple[int, ...] | None = None,
) -> list[Completion]:
    """Sample the step's rollouts; with ``rewards``, an engine that streams hands each
    completion to it as it finishes, so the checker works while the rest decode.
    ``seeds``: one per completion (``completion_seeds``), in place of ``seed``."""
    params = SamplingParams(
        temperature=config.rollout.temperature,
        top_p=config.rollout.top_p,
        max_new_tokens=max_length,
        stop=tuple(config.rollout.stop),
        n=config.rollout.rollouts_per_prompt,
        seed=seed if seeds is None else None,
        seeds=seeds,
    )
    if rewards is None or not getattr(generator, "streams_finished", False):
        return generator.generate(prompts.prompt_ids, params)

    def reward_now(finished: list[tuple[int, Completion]]) -> None:
        positions, completions = [p for p, _ in finished], [c for _, c in finished]
        rewards.add(positions, *reward_inputs(prompts, completions), reward_rows(prompts, completions))

    return generator.generate(prompts.prompt_ids, params, on_finished=reward_now)


def reward_inputs(prompts: ProblemSet, completions: list[Completion]) -> tuple[list[str], list[str], list[int]]:
    """(golds, response texts, model-sampled lengths) of ``completions``, for the reward."""
    golds = [prompts.problems[c.prompt_index].answer for c in completions]
    return golds, [c.text for c in completions], [c.num_model_tokens for c in completions]


def reward_rows(prompts: ProblemSet, completions: list[Completion]) -> list[RewardRow]:
    """What reward functions see of each completion's row: the problem text, the answer, the
    id and every extra column of the data (rewards/functions.py)."""
    problems = [prompts.problems[c.prompt_index] for c in completions]
    return [RewardRow(p.id, p.problem, {"answer": p.answer, "id": p.id, **p.extra}) for p in problems]


def old_logprobs_source(config: RLConfig) -> str:
    """Where the PPO ratio's old log-probs come from; decided here only (section 3.1.1).

    - "current": one on-policy update (algorithm.old_logprobs=recompute, fully on-policy):
      the policy has not moved since sampling, so the current log-probs, detached, are the
      old ones (ratio exactly 1) and no extra forward pass is needed;
    - "recompute": several mini-batches or epochs: the trainer's log-probs of the rows,
      taken once before the update;
    - "rollout": the generator's sampling log-probs (algorithm.old_logprobs=rollout), the
      only right ones when rollouts come from a stale policy (rollout.sync_weights_every > 1).
    """
    if config.algorithm.old_logprobs == "rollout":
        return "rollout"
    return "current" if config.fully_on_policy else "recompute"


def loss_settings(config: RLConfig, kl_coef: float, has_reference: bool) -> LossSettings:
    return LossSettings(
        clip_low=config.algorithm.clip_low,
        clip_high=config.algorithm.clip_high,
        aggregation=config.algorithm.loss_aggregation,
        # Dr. GRPO's constant: fixed for the run, not this step's curriculum length.
        max_length=config.loss_constant_length,
        kl_coef=kl_coef if config.kl.placement == "loss" else 0.0,
        kl_estimator=config.kl.estimator,
        entropy_coef=config.algorithm.entropy_coef,
        temperature=config.rollout.temperature or 1.0,
        old_is_current=old_logprobs_source(config) == "current",
        has_reference=has_reference,
    )


def step_seed(config: RLConfig, step: int, rank: int) -> int:
    """Sampling seed of a step: a resumed run draws exactly the rollouts it would have."""
    return (config.run.seed * 1_000_003 + step * 101 + rank) % (2**31)


def completion_seeds(config: RLConfig, step: int, first_prompt: int, num_prompts: int) -> tuple[int, ...] | None:
    """One seed per completion for vLLM, hashed from (run seed, step, global prompt index, child).

    vLLM seeds a request's n children ``seed + i``, so seeds made by adding offsets (``base +
    step*101 + rank``, then ``+ index*n``) land on each other: with the 1.5B preset's 8 ranks,
    1,024 rollouts of a step drew from 135 streams, some shared with the next step. Hashed
    seeds are distinct streams, whatever the world size. The HF engine hashes its row
    streams itself (rollout/fast_sampling.py) and keeps ``step_seed``: None for it.
    """
    if config.rollout.backend != "vllm":
        return None
    n = config.rollout.rollouts_per_prompt
    return tuple(_hash_seed(config.run.seed, step, first_prompt + prompt, child) for prompt in range(num_prompts) for child in range(n))


def _hash_seed(*parts: int) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_MODULUS  # within vLLM's int64


def run_rl(config: RLConfig, resume: bool = False) -> Path:
    """Train; returns the run directory (locked while training, see training/run_dir.py)."""
    info = init_distributed(config.distributed)
    check_world_size(config, info.world_size)  # before anything is loaded or written
    with claim_run_dir(config, resume, info) as start:
        run_dir = train_rl(config, start, info)
    shutdown(info)  # the process group this run started (torchrun), after every rank is done
    return run_dir


def train_rl(config: RLConfig, start: RunStart, info: DistInfo) -> Path:
    """The RL loop in a claimed run directory, from ``start.checkpoint`` or from step 0."""
    run_dir = Path(config.run.output_dir)
    threads = seed_everything(config.run)  # threads, then Python's and torch's seeds (training/run_setup.py)
    # Model, reference, data, generator, reward; optimizer, schedule, sampler; then the checkpoint.
    parts = build_parts(config, info)
    model, tokenizer, reference, generator = parts.model, parts.tokenizer, parts.reference, parts.generator
    train_set, heldout_set, reward_model, settings = parts.train_set, parts.heldout_set, parts.reward_model, parts.settings
    optimizer, scheduler, sampler = parts.optimizer, parts.scheduler, parts.sampler
    state = RLState()
    if start.checkpoint is not None:
        state = restore(start.checkpoint, model, reference, generator, optimizer, scheduler, sampler)
    trainer = wrap_model(model, info, config.distributed, optimizer)  # DDP, or FSDP2 shards (the optimizer follows)
    reference = wrap_reference(reference, info, config.distributed)  # FSDP: sharded like the policy, in its compute dtype
    fill_engine(generator, trainer, config, info, resumed=start.checkpoint is not None)  # ranks > 0 loaded an empty model
    if start.checkpoint is not None and ckpt.is_sharded_checkpoint(start.checkpoint):
        restore_shards(start.checkpoint, model, reference, generator, optimizer)  # into the shards, after the sharding
    writer = sharded_writer(run_dir, info, config.distributed, config.train.keep_checkpoints, model)  # None: full checkpoints

    tracker, progress = run_outputs(config, "rl", state.step, PROGRESS_KEYS, info)
    if info.is_main:
        drop_samples_after(run_dir, state.step)  # a resumed run writes the later steps' samples again
    hacking = LengthHackingMonitor.for_run(run_dir, state.step, echo=info.is_main)  # sections 4.2.2, 5
    no_signal = NoSignalWatch.for_run(state.step, config.model.path, echo=info.is_main)  # nothing correct: warn once
    if info.is_main:
        print(f"[rl] {run_dir}: {len(train_set.problems)} train problems, torch threads {threads}, ranks {info.world_size}", flush=True)
    if state.step == 0 and config.train.eval_every:
        # On every rank, as the later evaluations: a tensor-parallel engine's ranks generate together.
        log_metrics(tracker, 0, {f"heldout/{k}": v for k, v in run_heldout(generator, heldout_set, reward_model, config).items()})

    per_rank = config.rollout.prompts_per_step // info.world_size
    for step in range(state.step, config.train.steps):
        timer = PhaseTimer()
        # 1. Sample this step's prompts (every rank draws the same list, then takes its share).
        indices = sampler.take(config.rollout.prompts_per_step)[info.rank * per_rank : (info.rank + 1) * per_rank]
        prompts = train_set.subset(indices)
        max_length = max_length_at(step, config.rollout.max_length_schedule)
        kl_coef = kl_coefficient(config.kl.mode, step, config.kl.coef, config.kl.start, config.kl.end, config.kl.anneal_steps)

        # 2. Roll out n completions per prompt; each is rewarded as soon as it finishes (the
        #    checker runs in a background thread and its own worker processes meanwhile).
        with timer("generate"):
            rewards = reward_model.stream(max_length)
            seeds = completion_seeds(config, step, info.rank * per_rank, len(indices))
            completions = roll_out(generator, prompts, config, max_length, step_seed(config, step, info.rank), rewards, seeds)

        # 3. Reward every completion: wait for what is still being checked (engines that do not
        #    stream, such as vLLM and the tool loop, hand every completion over now).
        with timer("reward"):
            scored = rewards.result(*reward_inputs(prompts, completions), reward_rows(prompts, completions))

        # 4. Selection and advantages (minus the KL-in-reward penalty) over every rank's gathered
        #    outcomes, so all ranks agree on them; then the reference (and old) log-probs still
        #    missing, of the kept rows (a KL in the reward read the reference over every row before).
        with timer("prepare"):
            batch, row_ranks, step_metrics = prepare_batch(
                trainer, reference, prompts, completions, scored, config, settings, kl_coef, tokenizer.pad_token_id, info
            )

        # 5. Policy update: exactly epochs x prompts_per_step / prompts_per_update optimizer steps
        #    over every rank's kept rows (one on-policy update, or mini-batches / epochs: off-policy).
        with timer("update"):
            has_ref = reference is not None
            update_metrics = update_policy(
                trainer,
                optimizer,
                scheduler,
                batch,
                loss_settings(config, kl_coef, has_ref),
                num_minibatches=config.rollout.prompts_per_step // config.prompts_per_update,
                epochs=config.update.epochs,
                micro_batch_size=config.update.micro_batch_size,
                grad_clip=config.optim.grad_clip,
                info=info,
                shuffle_seed=step_seed(config, step, 0),
                row_ranks_N=row_ranks,
            )

        # 6. Sync the new weights into the rollout engine (every K steps: stale rollouts when K > 1).
        if (step + 1) % config.rollout.sync_weights_every == 0:
            generator_sync(generator, model)
        # 7. Periodic reference reset (section 4.3).
        if reference is not None and reference_reset_due(step + 1, config.kl.reference_reset_every):
            reset_reference(reference, model)  # shard to shard under FSDP
            state.reference_reset_at = step + 1

        # 8. Metrics: rollout monitors, update statistics, schedule values, timings (mean over ranks).
        metrics = step_metrics_of(
            completions,
            scored,
            {**step_metrics, **update_metrics},
            timer,
            config,
            info,
            kl_coef=kl_coef,
            max_length=max_length,
            lr=scheduler.get_last_lr()[0],
        )
        if config.train.eval_every and (step + 1) % config.train.eval_every == 0 or step + 1 == config.train.steps:
            metrics.update({f"heldout/{k}": v for k, v in run_heldout(generator, heldout_set, reward_model, config).items()})
        metrics.update(hacking.update(metrics, step + 1))  # length up, accuracy flat: warn and log
        no_signal.update(metrics)  # no correct rollout in the first steps (e.g. a random model): warn
        state.step, state.sampler = step + 1, sampler.state()
        if info.is_main:
            log_metrics(tracker, step + 1, metrics)
            progress.update(step + 1, metrics)
            if samples_due(step + 1, config.train.log_samples_every):  # what the model wrote (samples.py)
                log_samples(run_dir, tracker, step + 1, prompts, completions, scored, config.train.log_samples_prompts)

        # 9. Checkpoint (atomically; a kill at any point leaves the previous one usable).
        if (step + 1) % config.train.save_every == 0 or step + 1 == config.train.steps:
            save(run_dir, state, model, reference, generator, tokenizer, optimizer, scheduler, config, info, writer)

    if writer is not None:
        writer.finish()  # an asynchronous write's checkpoint is published before the run ends
    progress.close()
    reward_model.close()
    generator.close()  # the tool loop's sandbox worker, vLLM's engine
    if tracker is not None:
        tracker.close()
    return run_dir


@dataclass
class RLParts:
    """What one RL run trains with, built from its config (``build_parts``)."""

    model: Any
    tokenizer: Any
    reference: Any  # a frozen copy for the KL penalty / monitor, or None
    train_set: ProblemSet
    heldout_set: ProblemSet
    generator: Any
    reward_model: RewardModel
    settings: SelectionSettings
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: PromptSampler


def load_trainer_model(config: RLConfig, info: DistInfo) -> tuple[Any, Any]:
    """(model, tokenizer) with the memory plan; under FSDP on several ranks, on the CPU on
    rank 0 and empty (``meta``) on the others: sharding moves each layer to the GPU and fills
    every rank's shards from rank 0, so neither a GPU nor a rank's host memory holds the whole
    model beside rank 0's one copy."""
    if not ranks_load_empty(config, info) or info.rank == 0:
        return load_policy(config.model.model_copy(update={"device": load_device(config.model.device, info, config.distributed)}))
    from slowthink.models.modeling import load_tokenizer, set_memory_plan
    from slowthink.training.fsdp import empty_model

    return set_memory_plan(empty_model(config.model.path, config.model.dtype), config.model.memory_plan), load_tokenizer(config.model.path)


def ranks_load_empty(config: RLConfig, info: DistInfo) -> bool:
    """Whether ranks other than 0 load an empty model (FSDP on several ranks). Stale rollouts
    keep every rank's full copy: the engine's own weights are loaded from it."""
    return info.enabled and config.distributed.strategy == "fsdp" and config.rollout.sync_weights_every == 1


def fill_engine(generator: Any, trainer: Any, config: RLConfig, info: DistInfo, resumed: bool) -> None:
    """Once the trainer is sharded, give the rollout engine the weights that ranks > 0 did not
    load: an HF engine's empty copy gets storage and buffers, then (as a resumed vLLM engine)
    the weights gathered from the shards. Collective: every rank calls it."""
    if not ranks_load_empty(config, info):
        return
    engine = engine_model(generator)
    if isinstance(engine, torch.nn.Module):
        if any(p.is_meta for p in engine.parameters()):
            from slowthink.training.fsdp import materialize_like

            materialize_like(engine, unwrap(trainer), config.model.device)
        generator_sync(generator, trainer)
    elif engine is None and resumed:
        generator_sync(generator, trainer)  # restore() could not: the model was empty here


def build_parts(config: RLConfig, info: DistInfo = DistInfo()) -> RLParts:
    """Model, reference, problems, rollout engine, reward, selection, optimizer, schedule, sampler."""
    # With its memory plan; on the CPU under FSDP (sharding moves it to the GPU a layer at a time).
    model, tokenizer = load_trainer_model(config, info)
    needs_reference = config.kl.mode != "off" or config.kl.monitor
    reference = build_reference(model) if needs_reference else None
    train_set, heldout_set = load_problem_sets(config.data, tokenizer, config.run.seed)
    generator = build_generator(config, model, tokenizer)
    reward_model = RewardModel(config.reward)
    settings = SelectionSettings(
        config.algorithm.advantage,
        config.algorithm.drop_uniform_groups,
        config.algorithm.question_selection,
        config.algorithm.response_selection,
        config.algorithm.overlength_masking,
    )
    # Exactly epochs x prompts_per_step / prompts_per_update optimizer steps per RL step.
    updates_per_step = config.update.epochs * (config.rollout.prompts_per_step // config.prompts_per_update)
    optimizer = build_optimizer(model, config.optim)
    if config.model.optimizer_state:
        continue_optimizer(optimizer, Path(config.model.optimizer_state), config.optim.lr)
    scheduler = build_scheduler(optimizer, config.optim, total_steps=config.train.steps * updates_per_step)
    sampler = PromptSampler(len(train_set.problems), seed=config.run.seed)
    return RLParts(model, tokenizer, reference, train_set, heldout_set, generator, reward_model, settings, optimizer, scheduler, sampler)


def build_reference(model: Any) -> Any:
    """The KL reference: a frozen copy of the initial policy, or with LoRA the policy itself
    with its adapter off (the untouched base weights: no second copy, training/lora.py)."""
    if is_lora(model):
        return AdapterOff(model)
    return copy.deepcopy(model).eval().requires_grad_(False)


def step_metrics_of(
    completions: list[Completion], scored: Any, update_metrics: dict[str, Any], timer: PhaseTimer, config: RLConfig, info: DistInfo, **values: float
) -> dict[str, Any]:
    """One step's logged metrics: rollout monitors, selection and update statistics, mean reward
    and its components, the schedule ``values`` (kl_coef, max_length, lr), timings, tool use;
    then their mean over ranks."""
    texts, lengths = [c.text for c in completions], [c.num_model_tokens for c in completions]
    metrics = {**rollout_metrics(texts, lengths, [c.finished for c in completions], scored.verdicts), **update_metrics}
    metrics.update(reward=float(torch.tensor(scored.total).mean()), **values)
    metrics.update(component_means(scored.components))  # reward/NAME over the rows each applies to
    metrics.update(timer.metrics(generated_tokens=sum(len(c.token_ids) for c in completions)))
    if config.rollout.tools != "none":
        metrics.update(rollout_tool_metrics(completions, [v.correct for v in scored.verdicts]))
    metrics.update(reduce_across_ranks(metrics, info))
    return metrics


class PhaseTimer:
    """Seconds spent per phase of a step, and generation throughput."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def __call__(self, name: str) -> PhaseTimer:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = time.perf_counter() - self._t0

    def metrics(self, generated_tokens: int) -> dict[str, float]:
        out = {f"time/{k}_s": v for k, v in self.seconds.items()}
        out["time/step_s"] = time.perf_counter() - self.start
        out["tokens_per_s"] = generated_tokens / max(self.seconds.get("generate", 0.0), 1e-9)
        return out


def prepare_batch(trainer, reference, prompts, completions, scored, config: RLConfig, settings, kl_coef, pad_id, info: DistInfo = DistInfo()):
    """Scored rollouts -> this rank's training rows, the owner rank of every kept row of the
    step (global order), and metrics of the selection. Selection and advantages are computed
    over every rank's rows (gathered), identically on every rank."""
    group = config.rollout.rollouts_per_prompt
    sequences = rollout_sequences(prompts.prompt_ids, completions, group, pad_id)
    temperature = config.rollout.temperature or 1.0
    micro = config.update.micro_batch_size
    reward_kl_coef = kl_coef if config.kl.placement == "reward" else 0.0
    # Old log-probs still to take from the trainer (after selection, on the kept rows only).
    recompute = old_logprobs_source(config) == "recompute"
    kl_B = torch.zeros(len(completions))
    if reference is not None and reward_kl_coef > 0:
        sequences, kl_B = with_reward_kl(trainer, reference, sequences, config, recompute)
        recompute = False  # with_reward_kl took them, on every row
    shape = (len(prompts.problems), group)
    local = RowOutcomes(
        rewards_PG=torch.tensor(scored.total, dtype=torch.float32).view(shape),
        correct_PG=torch.tensor([v.correct for v in scored.verdicts]).view(shape),
        lengths_PG=torch.tensor([c.num_model_tokens for c in completions]).view(shape),
        finished_PG=torch.tensor([c.finished for c in completions]).view(shape),
        kl_PG=kl_B.view(shape),
    )
    if reference is not None and reward_kl_coef == 0 and is_sharded(reference):
        # A sharded reference's forward is collective: every rank reads all its rows (equal
        # shares) before selection, which then carries the log-probs of the kept rows along.
        sequences = sequences.with_(ref_logprobs_BT=reference_logprobs(reference, sequences, temperature, micro))
    # Every rank sees every rank's rows, so selection and advantage statistics are global.
    if recompute and is_sharded(trainer):
        # A sharded forward is collective: every rank recomputes all its rows (equal shares).
        sequences = sequences.with_(
            old_logprobs_BT=batched_logprobs(unwrap(trainer), sequences.input_ids_BL, sequences.attention_mask_BL, temperature, micro)
        )
    batch, row_ranks, metrics = select_training_rows(sequences, gather_outcomes(local, info), settings, reward_kl_coef, info)
    if reference is not None and reward_kl_coef == 0 and not is_sharded(reference) and len(batch):
        # A KL term in the loss, or the KL monitor, is taken in the update over the rows that
        # train: rows dropped by selection never need the reference (a local, unsharded copy).
        batch = batch.with_(ref_logprobs_BT=reference_logprobs(reference, batch, temperature, micro))
    if recompute and not is_sharded(trainer) and len(batch):
        batch = batch.with_(old_logprobs_BT=batched_logprobs(unwrap(trainer), batch.input_ids_BL, batch.attention_mask_BL, temperature, micro))
    return batch, row_ranks, metrics


def reference_logprobs(reference, rows, temperature: float, micro: int) -> torch.Tensor:
    """The reference's log-probs of ``rows`` (a sharded reference's gathered root freed after)."""
    ref_BT = batched_logprobs(unwrap(reference), rows.input_ids_BL, rows.attention_mask_BL, temperature, micro)
    done_with_reference(reference)
    return ref_BT


def with_reward_kl(trainer, reference, sequences, config: RLConfig, recompute: bool):
    """Every row's summed KL for the KL-in-reward penalty (taken before selection), from the
    trainer's own log-probs: the generator's may come from bf16 decoding or a stale policy.
    Returns the sequences with their reference (and, when ``recompute``, old) log-probs, and
    the (B,) KL; with recomputed old log-probs this forward is that recompute, not an extra one."""
    temperature, micro = config.rollout.temperature or 1.0, config.update.micro_batch_size
    ref_BT = reference_logprobs(reference, sequences, temperature, micro)
    policy_BT = batched_logprobs(unwrap(trainer), sequences.input_ids_BL, sequences.attention_mask_BL, temperature, micro)
    sequences = sequences.with_(ref_logprobs_BT=ref_BT, **({"old_logprobs_BT": policy_BT} if recompute else {}))
    return sequences, sequence_kl(policy_BT, ref_BT, sequences.loss_mask_BT, config.kl.estimator)


def continue_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Path, lr: float) -> None:
    """Start from another run's AdamW moments (the SFT cold start's), with this run's
    hyper-parameters: only the per-parameter state (moments, step counts) is taken; the
    learning rate, betas, eps and weight decay stay the RL config's."""
    state_file = checkpoint / "trainer_state.pt"
    if not state_file.is_file():
        raise ConfigError(f"model.optimizer_state: no trainer_state.pt in {checkpoint}")
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(ckpt.load_trainer_state(checkpoint)["optimizer"])
    for group, hyper in zip(optimizer.param_groups, own):
        group.update(hyper)
        group["lr"] = group["initial_lr"] = lr


def rollout_tool_metrics(completions: list[Completion], correct: list[bool]) -> dict[str, float]:
    """Tool calls per response, cell statuses, accuracy with and without tool use."""
    from slowthink.rollout.tool_loop import tool_metrics

    summary = tool_metrics(completions, correct)
    metrics = {f"tools/status/{status}": float(count) for status, count in summary.pop("tool_status_counts").items()}
    metrics.update({f"tools/{k}": float(v) for k, v in summary.items() if v is not None})
    return metrics


def generator_sync(generator: Any, model: Any) -> None:
    engine = engine_model(generator)
    if engine is None and is_lora(model):
        # vLLM samples from the base names: each adapter merged into its weight as it streams.
        getattr(generator, "generator", generator).load_weights(merged_weights(model))
        return
    if isinstance(engine, torch.nn.Module) and is_sharded(model):
        # Every rank gathers the shards (a collective), one tensor at a time, into its own engine copy.
        copy_full_weights(engine, model)
        return
    if engine is not None and is_sharded(model):
        # vLLM's CPU copy for stale rollouts: the gathered weights.
        engine.load_state_dict(full_weights(model))
        return
    generator.update_weights(model)


def run_heldout(generator, heldout_set: ProblemSet, reward_model: RewardModel, config: RLConfig) -> dict[str, float]:
    subset = heldout_set.subset(list(range(min(config.train.eval_max_problems, len(heldout_set.problems)))))
    max_length = config.rollout.max_length_schedule[-1][1]
    return evaluate_heldout(generator, subset, reward_model.checker, max_length, config.train.eval_temperature, tuple(config.rollout.stop))


def reduce_across_ranks(metrics: dict[str, float | None], info: DistInfo) -> dict[str, float | None]:
    """Mean of every metric over ranks (each rank saw its own share of prompts); None
    (nothing to measure this step, e.g. no update) stays None."""
    if not info.enabled:
        return {}
    gathered = all_gather_objects(metrics, info)
    reduced: dict[str, float | None] = {}
    for key in metrics:
        values = [m.get(key) for m in gathered]
        if all(key in m for m in gathered):
            reduced[key] = None if any(v is None for v in values) else sum(values) / len(values)
    return reduced


def log_samples(run_dir: Path, tracker, step: int, prompts: ProblemSet, completions: list[Completion], scored: Any, count: int) -> None:
    """The first ``count`` prompts of the step with all their rollouts: samples/ and the trackers."""
    rows = sample_rows(step, prompts.problems, completions, scored, count)
    write_samples(run_dir, step, rows)
    if tracker is not None:
        tracker.log_samples(rows, step)


def log_metrics(tracker, step: int, metrics: dict[str, float]) -> None:
    if tracker is not None:
        tracker.log(metrics, step)


def save(
    run_dir, state: RLState, model, reference, generator, tokenizer, optimizer, scheduler, config: RLConfig, info: DistInfo, writer=None
) -> None:
    if writer is not None:
        # Every rank writes its own shards of the policy, its optimizer and a reset reference.
        trainer_state = {
            "step": state.step,
            "sampler": state.sampler,
            "reference_reset_at": state.reference_reset_at,
            "scheduler": scheduler.state_dict(),
            "rng": ckpt.rng_state(),
        }
        engine = engine_model(generator)
        if engine is not None and engine is not model and info.is_main:
            trainer_state["generator"] = engine.state_dict()
        writer.save(state.step, model, optimizer, tokenizer, trainer_state, reference if state.reference_reset_at > 0 else None)
        return
    # Full weights and optimizer state on rank 0; under FSDP every rank takes part in the gather.
    weights, optimizer_state = checkpoint_states(model, optimizer, info)
    reference_state = None
    if reference is not None and state.reference_reset_at > 0:
        reference_state = weights_for_checkpoint(reference, info)  # gathered from the shards under FSDP
    if not info.is_main:
        barrier(info)
        return
    trainer_state = {
        "step": state.step,
        "sampler": state.sampler,
        "reference_reset_at": state.reference_reset_at,
        "optimizer": optimizer_state,
        "scheduler": scheduler.state_dict(),
        "rng": ckpt.rng_state(),
    }
    if reference_state is not None:
        trainer_state["reference"] = reference_state
    engine = engine_model(generator)
    if engine is not None and engine is not model:
        trainer_state["generator"] = engine.state_dict()
    ckpt.save_checkpoint(run_dir, state.step, model, tokenizer, trainer_state, keep_last=config.train.keep_checkpoints, state_dict=weights)
    barrier(info)


def restore_shards(checkpoint: Path, model, reference, generator, optimizer) -> None:
    """A sharded checkpoint's policy, optimizer and reference, read into the shards (collective)."""
    load_sharded(checkpoint, model, optimizer, reference)
    if engine_model(generator) is None:
        generator_sync(generator, model)  # a separate engine (vLLM) still holds the initial weights


def restore(checkpoint: Path, model, reference, generator, optimizer, scheduler, sampler: PromptSampler) -> RLState:
    """Load weights and trainer state; the run continues exactly where the checkpoint was."""
    saved = ckpt.restore_training(checkpoint, model, optimizer, scheduler, sampler)
    if reference is not None and "reference" in saved:
        reference.load_state_dict(saved["reference"])
    engine = engine_model(generator)
    if engine is not None and "generator" in saved:
        engine.load_state_dict(saved["generator"])
    elif engine is None and not ckpt.is_sharded_checkpoint(checkpoint) and not any(p.is_meta for p in model.parameters()):
        # A separate engine (vLLM) still holds the initial weights: give it the checkpoint's
        # (an empty model's rank gives them after the sharding, fill_engine).
        generator_sync(generator, model)
    return RLState(step=saved["step"], sampler=saved["sampler"], reference_reset_at=saved["reference_reset_at"])
