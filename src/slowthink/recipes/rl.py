"""The RL recipe (``slowthink rl``): RL with verifiable rewards, read top to bottom.

    for step:
        sample prompts -> roll out n per prompt (rewarded as each finishes)
        -> (KL in the reward only) reference log-probs and KL of every row
        -> select / mask -> advantages (- KL penalty) -> the log-probs still missing, of the kept
           rows (reference for a KL in the loss or the monitor; old ones when recomputed)
        -> policy update -> sync weights -> reference reset -> evaluate -> log -> checkpoint

Every factor of the paper's Table 1 and sections 3-4 is a field of ``RLConfig``. The parts a
run trains with are built in ``rl_parts.py``, the engine and its weight sync live in
``rl_engine.py``, checkpoints in ``rl_checkpoint.py``; the math in ``training/`` and ``algorithms/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slowthink.algorithms.schedules import kl_coefficient, max_length_at, reference_reset_due
from slowthink.data.problem_sets import ProblemSet
from slowthink.eval.heldout import evaluate_heldout
from slowthink.monitors.length_hacking import LengthHackingMonitor
from slowthink.monitors.metrics import rollout_metrics
from slowthink.monitors.no_signal import NoSignalWatch
from slowthink.monitors.tools import rollout_tool_metrics
from slowthink.progress import PhaseTimer
from slowthink.recipes import rl_engine
from slowthink.recipes.rl_checkpoint import RLState, restore, restore_shards, save
from slowthink.recipes.rl_config import RLConfig, check_world_size
from slowthink.recipes.rl_engine import fill_engine
from slowthink.recipes.rl_parts import RLParts, build_parts
from slowthink.recipes.rl_seeds import completion_seeds, step_seed
from slowthink.rewards.functions import RewardRow
from slowthink.rewards.reward import RewardBatch, RewardModel, RewardStream, component_means
from slowthink.rollout.generator import Completion, Generator, SamplingParams
from slowthink.samples import drop_samples_after, sample_rows, samples_due, write_samples
from slowthink.training import checkpoint as ckpt
from slowthink.training.batch import SequenceBatch
from slowthink.training.distributed import (
    DistInfo,
    done_with_reference,
    is_sharded,
    reduce_across_ranks,
    reset_reference,
    unwrap,
    wrap_model,
    wrap_reference,
)
from slowthink.training.experience import RowOutcomes, gather_outcomes, rollout_sequences, select_training_rows, sequence_kl
from slowthink.training.logprobs import batched_logprobs
from slowthink.training.policy_update import LossSettings, update_policy
from slowthink.training.run_dir import RunStart
from slowthink.training.run_setup import run_outputs, run_training, seed_everything
from slowthink.training.sharded_checkpoint import ShardedWriter, continue_sharded_optimizer, sharded_writer

PROGRESS_KEYS = ("reward", "accuracy", "response_length", "heldout/accuracy", "kl")


def run_rl(config: RLConfig, resume: bool = False) -> Path:
    """Train; returns the run directory (locked while training, see training/run_dir.py)."""
    return run_training(config, resume, train_rl, check=lambda config, info: check_world_size(config, info.world_size))


def train_rl(config: RLConfig, start: RunStart, info: DistInfo) -> Path:
    """The RL loop in a claimed run directory, from ``start.checkpoint`` or from step 0."""
    run_dir = Path(config.run.output_dir)
    threads = seed_everything(config.run)  # threads, then Python's and torch's seeds (training/run_setup.py)
    # Model, reference, data, generator, reward; optimizer, schedule, sampler (rl_parts.py).
    parts = build_parts(config, info)
    # The checkpoint, then the sharding; the writer of sharded checkpoints (None: full ones).
    state, writer = resume_and_wrap(parts, start, config, info)

    tracker, progress = run_outputs(config, "rl", state.step, PROGRESS_KEYS, info)
    if info.is_main:
        drop_samples_after(run_dir, state.step)  # a resumed run writes the later steps' samples again
    hacking = LengthHackingMonitor.for_run(run_dir, state.step, echo=info.is_main)  # sections 4.2.2, 5
    no_signal = NoSignalWatch.for_run(state.step, config.model.path, echo=info.is_main)  # nothing correct: warn once
    if info.is_main:
        print(f"[rl] {run_dir}: {len(parts.train_set.problems)} train problems, torch threads {threads}, ranks {info.world_size}", flush=True)
    if state.step == 0 and config.train.eval_every:
        # On every rank, as the later evaluations: a tensor-parallel engine's ranks generate together.
        log_metrics(tracker, 0, {f"heldout/{k}": v for k, v in run_heldout(parts.generator, parts.heldout_set, parts.reward_model, config).items()})

    for step in range(state.step, config.train.steps):
        # 1-7. Sample prompts, roll out, reward, select, advantages, update, sync, reference reset.
        metrics, rollouts = rl_step(parts, state, step, config, info)
        # 8. Evaluate when due, watch the monitors, log (metrics.jsonl, trackers, samples/).
        if config.train.eval_every and (step + 1) % config.train.eval_every == 0 or step + 1 == config.train.steps:
            metrics.update({f"heldout/{k}": v for k, v in run_heldout(parts.generator, parts.heldout_set, parts.reward_model, config).items()})
        metrics.update(hacking.update(metrics, step + 1))  # length up, accuracy flat: warn and log
        no_signal.update(metrics)  # no correct rollout in the first steps (e.g. a random model): warn
        state.step, state.sampler = step + 1, parts.sampler.state()
        if info.is_main:
            log_metrics(tracker, step + 1, metrics)
            progress.update(step + 1, metrics)
            if samples_due(step + 1, config.train.log_samples_every):  # what the model wrote (samples.py)
                log_samples(run_dir, tracker, step + 1, rollouts, config.train.log_samples_prompts)
        # 9. Checkpoint (atomically; a kill at any point leaves the previous one usable).
        if (step + 1) % config.train.save_every == 0 or step + 1 == config.train.steps:
            save(parts, state, config, info, writer)

    if writer is not None:
        writer.finish()  # an asynchronous write's checkpoint is published before the run ends
    progress.close()
    parts.reward_model.close()
    parts.generator.close()  # the tool loop's sandbox worker, vLLM's engine
    if tracker is not None:
        tracker.close()
    return run_dir


@dataclass
class StepRollouts:
    """One rank's rollouts of a step: its prompts, their completions (prompt-major), their rewards."""

    prompts: ProblemSet
    completions: list[Completion]
    scored: RewardBatch


def rl_step(parts: RLParts, state: RLState, step: int, config: RLConfig, info: DistInfo) -> tuple[dict[str, Any], StepRollouts]:
    """One RL step up to its logged metrics (mean over ranks), and this rank's rollouts."""
    timer = PhaseTimer()
    # 1. Sample this step's prompts (every rank draws the same list, then takes its share).
    per_rank = config.rollout.prompts_per_step // info.world_size
    indices = parts.sampler.take(config.rollout.prompts_per_step)[info.rank * per_rank : (info.rank + 1) * per_rank]
    prompts = parts.train_set.subset(indices)
    max_length = max_length_at(step, config.rollout.max_length_schedule)
    kl_coef = kl_coefficient(config.kl.mode, step, config.kl.coef, config.kl.start, config.kl.end, config.kl.anneal_steps)

    # 2. Roll out n completions per prompt; each is rewarded as soon as it finishes (the
    #    checker runs in a background thread and its own worker processes meanwhile).
    with timer("generate"):
        rewards = parts.reward_model.stream(max_length)
        seeds = completion_seeds(config, step, info.rank * per_rank, len(indices))
        completions = roll_out(parts.generator, prompts, config, max_length, step_seed(config, step, info.rank), rewards, seeds)

    # 3. Reward every completion: wait for what is still being checked (engines that do not
    #    stream, such as vLLM and the tool loop, hand every completion over now).
    with timer("reward"):
        scored = rewards.result(*reward_inputs(prompts, completions), reward_rows(prompts, completions))
    rollouts = StepRollouts(prompts, completions, scored)

    # 4. Selection and advantages (minus the KL-in-reward penalty) over every rank's gathered
    #    outcomes, so all ranks agree on them; then the reference (and old) log-probs still
    #    missing, of the kept rows (a KL in the reward read the reference over every row before).
    with timer("prepare"):
        batch, row_ranks_K, selection_metrics = prepare_batch(parts, rollouts, kl_coef, config, info)

    # 5. Policy update: exactly epochs x prompts_per_step / prompts_per_update optimizer steps
    #    over every rank's kept rows (one on-policy update, or mini-batches / epochs: off-policy).
    with timer("update"):
        update_metrics = update_policy(
            parts.wrapped,
            parts.optimizer,
            parts.scheduler,
            batch,
            loss_settings(config, kl_coef, parts.reference is not None),
            num_minibatches=config.rollout.prompts_per_step // config.prompts_per_update,
            epochs=config.update.epochs,
            micro_batch_size=config.update.micro_batch_size,
            grad_clip=config.optim.grad_clip,
            info=info,
            shuffle_seed=step_seed(config, step, 0),
            row_ranks_K=row_ranks_K,
        )

    # 6. Sync the new weights into the rollout engine (every K steps: stale rollouts when K > 1).
    if (step + 1) % config.rollout.sync_weights_every == 0:
        rl_engine.generator_sync(parts.generator, parts.model)
    # 7. Periodic reference reset (section 4.3).
    if parts.reference is not None and reference_reset_due(step + 1, config.kl.reference_reset_every):
        reset_reference(parts.reference, parts.model)  # shard to shard under FSDP
        state.reference_reset_at = step + 1

    schedule = {"kl_coef": kl_coef, "max_length": max_length, "lr": parts.scheduler.get_last_lr()[0]}
    return step_metrics_of(rollouts, {**selection_metrics, **update_metrics}, timer, config, info, **schedule), rollouts


def resume_and_wrap(parts: RLParts, start: RunStart, config: RLConfig, info: DistInfo) -> tuple[RLState, ShardedWriter | None]:
    """Restore ``start.checkpoint`` (if any), wrap the policy and the reference for training
    (DDP or FSDP2 shards), fill the engine; the run's state and its sharded-checkpoint writer."""
    state = RLState()
    if start.checkpoint is not None:
        state = restore(start.checkpoint, parts)
    parts.wrapped = wrap_model(parts.model, info, config.distributed, parts.optimizer)  # DDP, or FSDP2 shards (the optimizer follows)
    parts.reference = wrap_reference(parts.reference, info, config.distributed)  # FSDP: sharded like the policy, in its compute dtype
    fill_engine(parts.generator, parts.wrapped, config, info, resumed=start.checkpoint is not None)  # ranks > 0 loaded an empty model
    if start.checkpoint is not None and ckpt.is_sharded_checkpoint(start.checkpoint):
        restore_shards(start.checkpoint, parts)  # into the shards, after the sharding
    elif start.checkpoint is None and config.model.optimizer_state:
        # A sharded checkpoint's moments, read into the shards (a full one's: build_parts).
        continue_sharded_optimizer(Path(config.model.optimizer_state), parts.model, parts.optimizer)
    writer = sharded_writer(Path(config.run.output_dir), info, config.distributed, config.train.keep_checkpoints, parts.model)
    return state, writer


def roll_out(
    generator: Generator,
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
    if rewards is None or not generator.streams_finished:
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


def prepare_batch(
    parts: RLParts, rollouts: StepRollouts, kl_coef: float, config: RLConfig, info: DistInfo = DistInfo()
) -> tuple[SequenceBatch, torch.Tensor, dict[str, float]]:
    """Scored rollouts -> this rank's training rows, the owner rank of each of the step's K
    kept rows (global order), and metrics of the selection. Selection and advantages are
    computed over every rank's rows (gathered), identically on every rank. Reads the parts'
    wrapped policy, reference, selection settings and pad id; ``kl_coef`` is this step's."""
    wrapped, reference, settings = parts.wrapped, parts.reference, parts.settings
    prompts, completions, scored = rollouts.prompts, rollouts.completions, rollouts.scored
    group = config.rollout.rollouts_per_prompt
    sequences = rollout_sequences(prompts.prompt_ids, completions, group, parts.tokenizer.pad_token_id)
    temperature, micro = config.logprob_temperature, config.update.micro_batch_size
    reward_kl_coef, _ = config.kl_coefs(kl_coef)
    # Old log-probs still to take from the policy (after selection, on the kept rows only).
    recompute = old_logprobs_source(config) == "recompute"
    kl_B = torch.zeros(len(completions))
    if reference is not None and reward_kl_coef > 0:
        sequences, kl_B = with_reward_kl(wrapped, reference, sequences, config, recompute)
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
    if recompute and is_sharded(wrapped):
        # A sharded forward is collective: every rank recomputes all its rows (equal shares).
        sequences = sequences.with_(
            old_logprobs_BT=batched_logprobs(unwrap(wrapped), sequences.input_ids_BL, sequences.attention_mask_BL, temperature, micro)
        )
    batch, row_ranks_K, metrics = select_training_rows(sequences, gather_outcomes(local, info), settings, reward_kl_coef, info)
    if reference is not None and reward_kl_coef == 0 and not is_sharded(reference) and len(batch):
        # A KL term in the loss, or the KL monitor, is taken in the update over the rows that
        # train: rows dropped by selection never need the reference (a local, unsharded copy).
        batch = batch.with_(ref_logprobs_BT=reference_logprobs(reference, batch, temperature, micro))
    if recompute and not is_sharded(wrapped) and len(batch):
        batch = batch.with_(old_logprobs_BT=batched_logprobs(unwrap(wrapped), batch.input_ids_BL, batch.attention_mask_BL, temperature, micro))
    return batch, row_ranks_K, metrics


def reference_logprobs(reference: Any, rows: SequenceBatch, temperature: float, micro: int) -> torch.Tensor:
    """The reference's log-probs of ``rows`` (a sharded reference's gathered root freed after)."""
    ref_BT = batched_logprobs(unwrap(reference), rows.input_ids_BL, rows.attention_mask_BL, temperature, micro)
    done_with_reference(reference)
    return ref_BT


def with_reward_kl(wrapped: Any, reference: Any, sequences: SequenceBatch, config: RLConfig, recompute: bool) -> tuple[SequenceBatch, torch.Tensor]:
    """Every row's summed KL for the KL-in-reward penalty (taken before selection), from the
    trainer's own log-probs (``wrapped``: the policy as it trains): the generator's may come from bf16 decoding or a stale policy.
    Returns the sequences with their reference (and, when ``recompute``, old) log-probs, and
    the (B,) KL; with recomputed old log-probs this forward is that recompute, not an extra one."""
    temperature, micro = config.logprob_temperature, config.update.micro_batch_size
    ref_BT = reference_logprobs(reference, sequences, temperature, micro)
    policy_BT = batched_logprobs(unwrap(wrapped), sequences.input_ids_BL, sequences.attention_mask_BL, temperature, micro)
    sequences = sequences.with_(ref_logprobs_BT=ref_BT, **({"old_logprobs_BT": policy_BT} if recompute else {}))
    return sequences, sequence_kl(policy_BT, ref_BT, sequences.loss_mask_BT, config.kl.estimator)


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
        kl_coef=config.kl_coefs(kl_coef)[1],
        kl_estimator=config.kl.estimator,
        entropy_coef=config.algorithm.entropy_coef,
        temperature=config.logprob_temperature,
        old_is_current=old_logprobs_source(config) == "current",
        has_reference=has_reference,
    )


def step_metrics_of(
    rollouts: StepRollouts, update_metrics: dict[str, Any], timer: PhaseTimer, config: RLConfig, info: DistInfo, **values: float
) -> dict[str, Any]:
    """One step's logged metrics: rollout monitors, selection and update statistics, mean reward
    and its components, the schedule ``values`` (kl_coef, max_length, lr), timings, tool use;
    then their mean over ranks."""
    completions, scored = rollouts.completions, rollouts.scored
    texts, lengths = [c.text for c in completions], [c.num_model_tokens for c in completions]
    metrics = {**rollout_metrics(texts, lengths, [c.finished for c in completions], scored.verdicts), **update_metrics}
    metrics.update(reward=float(torch.tensor(scored.total).mean()), **values)
    metrics.update(component_means(scored.components))  # reward/NAME over the rows each applies to
    metrics.update(timer.metrics(generated_tokens=sum(len(c.token_ids) for c in completions)))
    if config.rollout.tools != "none":
        metrics.update(rollout_tool_metrics(completions, [v.correct for v in scored.verdicts]))  # monitors/tools.py
    metrics.update(reduce_across_ranks(metrics, info))
    return metrics


def run_heldout(generator: Generator, heldout_set: ProblemSet, reward_model: RewardModel, config: RLConfig) -> dict[str, float]:
    subset = heldout_set.subset(list(range(min(config.train.eval_max_problems, len(heldout_set.problems)))))
    max_length = config.rollout.max_length_schedule[-1][1]
    return evaluate_heldout(generator, subset, reward_model.checker, max_length, config.train.eval_temperature, tuple(config.rollout.stop))


def log_samples(run_dir: Path, tracker: Any, step: int, rollouts: StepRollouts, count: int) -> None:
    """The first ``count`` prompts of the step with all their rollouts: samples/ and the trackers."""
    rows = sample_rows(step, rollouts.prompts.problems, rollouts.completions, rollouts.scored, count)
    write_samples(run_dir, step, rows)
    if tracker is not None:
        tracker.log_samples(rows, step)


def log_metrics(tracker: Any, step: int, metrics: dict[str, float]) -> None:
    if tracker is not None:
        tracker.log(metrics, step)
