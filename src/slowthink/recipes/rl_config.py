"""The RL recipe's config: one typed class per component, every factor the paper varies.

Batch vocabulary (used everywhere): ``prompts_per_step`` (the paper's train batch size,
TBS), ``rollouts_per_prompt`` (n), ``prompts_per_update`` (mini-batch; equal to
prompts_per_step with one epoch = fully on-policy), ``micro_batch_size`` (sequences per
forward/backward; never changes the math).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from slowthink.algorithms.advantages import ADVANTAGE_ESTIMATORS
from slowthink.algorithms.losses import LOSS_AGGREGATIONS
from slowthink.config import ConfigError, StrictConfig
from slowthink.recipes.common_config import ProblemSourceConfig, RLModelConfig, RunConfig
from slowthink.rewards.reward import RewardConfig
from slowthink.rollout.vllm_backend import VLLMEngineConfig
from slowthink.tracking import TrackingConfig
from slowthink.training.distributed import DistributedConfig
from slowthink.training.optim import OptimConfig


class RolloutConfig(StrictConfig):
    backend: Literal["hf", "vllm"] = "hf"
    """hf: the in-process KV-cached generator (CPU or one GPU); vllm: a colocated vLLM engine synced after every
    update (docs/scale.md)."""
    prompts_per_step: int = 32
    """the paper's TBS (128 / 1024)"""
    rollouts_per_prompt: int = 8
    """n (8, 16, 64)"""
    temperature: float = 1.0
    """0.6, 1.0, 1.2 in the paper"""
    top_p: float = 1.0
    """Nucleus-sampling p of rollouts (1 = the full distribution)."""
    max_length_schedule: list[tuple[int, int]] = Field(default_factory=lambda: [(0, 1024)])
    """Max-response-length curriculum: [[from_step, max_tokens], ...], e.g. [[0, 8192], [100, 20480]] (section 3.2)."""
    stop: list[str] = Field(default_factory=list)
    """Extra strings that end a response (the template's end-of-turn always does)."""
    sync_weights_every: int = 1
    """Sync the trainer's weights into the generator every K steps; K > 1 reuses a stale
    (older) policy for rollouts: off-policy, corrected with the rollout log-probs."""
    generation_batch_size: int | None = None
    """Sequences per generation batch of the hf backend (vLLM schedules its own batches)."""
    fast_generation: bool = True
    """hf backend: decode Qwen2/Llama models with the static-cache fast path (rollout/fast_qwen2.py;
    greedy identical to the generic loop, sampling from another random stream); false forces
    the generic transformers loop. Other model families always take the generic loop."""
    generation_dtype: Literal["float32", "bfloat16"] = "float32"
    """hf backend, fast path: the dtype decoding computes in. bfloat16 keeps float32 master weights
    and copies them to bfloat16 per batch (matmuls, cache; softmax and sampling in float32):
    faster where the CPU has AVX512-BF16 or AMX (bench/RESULTS.md), rollouts no longer equal
    float32's token for token, and old log-probs still come from the trainer's own forward."""
    tools: Literal["none", "python"] = "none"
    """"python" runs code blocks in the sandbox during rollouts (tool-integrated RL)."""
    max_tool_calls: int | None = None
    """Tool calls allowed per response (rollout.tools=python only)."""
    tool_preset: Literal["default", "still3"] | None = None
    """Tool format: "default" or "still3" (the paper's release; rollout.tools=python only)."""
    vllm: VLLMEngineConfig = VLLMEngineConfig()
    """The vLLM engine (rollout.backend=vllm only): GPU memory share, tensor parallel size,
    sleep mode during updates, ... (see rollout/vllm_backend.py and docs/scale.md)."""

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        steps = [s for s, _ in self.max_length_schedule]
        if not steps or steps[0] != 0 or steps != sorted(steps):
            raise ValueError("rollout.max_length_schedule must start at step 0 and be sorted, e.g. [[0, 8192], [100, 20480]]")
        if self.backend == "vllm" and self.generation_batch_size is not None:
            raise ValueError("rollout.generation_batch_size applies to the hf backend only; vLLM schedules its own batches")
        if self.generation_dtype != "float32" and (self.backend != "hf" or not self.fast_generation):
            raise ValueError("rollout.generation_dtype applies to the hf backend's fast path (vLLM: rollout.vllm.dtype)")
        if self.tools == "none" and (self.max_tool_calls is not None or self.tool_preset is not None):
            raise ValueError("rollout.max_tool_calls and rollout.tool_preset need rollout.tools=python")
        if self.prompts_per_step < 1 or self.rollouts_per_prompt < 1:
            raise ValueError("rollout.prompts_per_step and rollout.rollouts_per_prompt must be >= 1")
        return self


class KLConfig(StrictConfig):
    """KL penalty to a reference model (section 3.1.1: off, fixed 1e-3, or cosine 1e-3 -> 0)."""

    mode: Literal["off", "fixed", "cosine"] = "off"
    """off, fixed (kl.coef) or cosine (kl.start -> kl.end over kl.anneal_steps); section 3.1.1."""
    coef: float = 1e-3
    """the fixed coefficient"""
    start: float = 1e-3
    """cosine: coefficient at step 0"""
    end: float = 0.0
    """cosine: coefficient at and after anneal_steps (reached exactly)"""
    anneal_steps: int = 100
    """cosine: RL steps over which the coefficient goes from start to end."""
    estimator: Literal["k1", "k2", "k3"] = "k3"
    """KL estimator (algorithms/kl.py): k1 log-ratio, k2 half squared log-ratio, k3 the non-negative unbiased
    one; k1 cannot sit in the loss."""
    placement: Literal["loss", "reward"] = "loss"
    """"loss": a KL term in the loss; "reward": a per-sequence penalty subtracted from the reward."""
    reference_reset_every: int = 0
    """Replace the reference with the current policy every K steps (section 4.3); 0 = never."""
    monitor: bool = True
    """Compute and log KL to the initial policy even when the penalty is off."""


class AlgorithmConfig(StrictConfig):
    advantage: str = "grpo"
    """grpo, grpo_no_std (Dr. GRPO), rloo, reinforce_pp"""
    loss_aggregation: str = "token_mean"
    """token_mean, seq_mean, constant (Dr. GRPO)"""
    clip_low: float = 0.2
    """PPO clip below: the ratio is clipped at 1 - clip_low (section 3.1.1)."""
    clip_high: float = 0.2
    """PPO clip above: at 1 + clip_high; larger than clip_low is the asymmetric 'clip-higher' variant."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus in the loss (Figure 9); 0 = off."""
    drop_uniform_groups: bool = False
    """Drop groups whose rewards are all equal before the update (DAPO's dynamic-sampling filter).
    Off by default, as in the paper's runs: dropping them shrinks the token-mean denominator to
    the informative rows (a larger per-token step that changes with the solve rate) and takes
    them out of a KL-in-the-loss pull. The demo (tiny_rl.yaml) turns it on."""
    question_selection: bool = False
    """Length strategies of section 4.2.1."""
    response_selection: bool = False
    """RS (section 4.2.1): per question, learn only from the longest correct and the shortest incorrect response
    when the former is longer (algorithms/selection.py)."""
    overlength_masking: bool = False
    """ORM (section 4.2.1): responses cut at the length limit are left out of the loss."""
    old_logprobs: Literal["recompute", "rollout"] = "recompute"
    """"recompute": old log-probs from the trainer's model before the update (exact on-policy
    ratio 1); "rollout": the generator's sampling log-probs (needed with stale rollouts)."""

    @model_validator(mode="after")
    def _check(self) -> AlgorithmConfig:
        if self.advantage not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"algorithm.advantage '{self.advantage}' unknown; allowed: {', '.join(ADVANTAGE_ESTIMATORS)}")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(f"algorithm.loss_aggregation '{self.loss_aggregation}' unknown; allowed: {', '.join(LOSS_AGGREGATIONS)}")
        if self.question_selection and self.response_selection:
            raise ValueError("algorithm.question_selection and algorithm.response_selection are alternatives; choose one")
        return self


class UpdateConfig(StrictConfig):
    """How a batch of rollouts becomes optimizer steps (on-policy vs off-policy, section 3.1.1)."""

    prompts_per_update: int = Field(0, ge=0)
    """0 = prompts_per_step (one update per batch: fully on-policy)"""
    epochs: int = Field(1, ge=1)
    """passes over each batch"""
    micro_batch_size: int = Field(16, ge=1)
    """sequences per forward/backward"""


class TrainConfig(StrictConfig):
    steps: int = Field(100, ge=1)
    """RL steps (each: roll out, reward, update)"""
    eval_every: int = Field(10, ge=0)
    """0 = only at the end"""
    eval_temperature: float = 0.0
    """greedy held-out accuracy"""
    eval_max_problems: int = Field(200, ge=1)
    """held-out problems per evaluation"""
    save_every: int = Field(10, ge=1)
    """checkpoint every N steps (and at the end)"""
    keep_checkpoints: int = Field(2, ge=1)
    """newest checkpoints kept on disk"""
    log_samples_every: int = Field(10, ge=0)
    """Every N steps, write rollouts to <run_dir>/samples/step_NNNNNN.jsonl (and the trackers); 0 = never."""
    log_samples_prompts: int = Field(4, ge=1)
    """Prompts per samples file, each with all its rollouts (rank 0's first prompts of the step)."""


class RLConfig(StrictConfig):
    run: RunConfig = RunConfig()
    """Where the run writes, its seed, threads, progress and overwrite policy."""
    model: RLModelConfig = RLModelConfig()
    """The policy: path, dtype, memory plan, optimizer state to continue from."""
    data: ProblemSourceConfig = ProblemSourceConfig()
    rollout: RolloutConfig = RolloutConfig()
    """How responses are sampled: TBS and n, temperature, length curriculum, backend, tools (sections 3.1, 3.2,
    4.4)."""
    reward: RewardConfig = RewardConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    """Advantage estimator, PPO clip, loss aggregation, entropy bonus, length strategies, old log-probs."""
    kl: KLConfig = KLConfig()
    optim: OptimConfig = OptimConfig()
    update: UpdateConfig = UpdateConfig()
    train: TrainConfig = TrainConfig()
    """RL steps, held-out evaluation and checkpoint cadence."""
    tracking: TrackingConfig = TrackingConfig()
    distributed: DistributedConfig = DistributedConfig()

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        per_update = self.update.prompts_per_update or self.rollout.prompts_per_step
        if self.rollout.prompts_per_step % per_update:
            raise ValueError(f"update.prompts_per_update ({per_update}) must divide rollout.prompts_per_step ({self.rollout.prompts_per_step})")
        if self.rollout.sync_weights_every > 1 and self.algorithm.old_logprobs != "rollout":
            raise ValueError("rollout.sync_weights_every > 1 samples from a stale policy: set algorithm.old_logprobs=rollout")
        if self.algorithm.loss_aggregation == "constant" and self.rollout.max_length_schedule[-1][1] <= 0:
            raise ValueError("algorithm.loss_aggregation=constant needs a positive max length")
        if self.rollout.generation_dtype == "bfloat16" and self.algorithm.old_logprobs == "rollout":
            # bf16 sampling log-probs differ from the trainer's fp32 ones by 0.026 nats per token on
            # average (0.19 at most): a PPO ratio away from 1 before any update.
            raise ValueError(
                "rollout.generation_dtype=bfloat16 with algorithm.old_logprobs=rollout would take the PPO ratio's old "
                "log-probs from bf16 decoding (0.03 nats per token off the trainer's): use algorithm.old_logprobs=recompute "
                "or rollout.generation_dtype=float32"
            )
        if self.rollout.backend == "vllm" and self.rollout.top_p < 1 and self.algorithm.old_logprobs == "rollout":
            # vLLM's sampling log-probs are of the top-p truncated distribution; the trainer's are not.
            raise ValueError(
                "rollout.backend=vllm with rollout.top_p < 1 returns truncated log-probs: use algorithm.old_logprobs=recompute or rollout.top_p=1"
            )
        if self.kl.reference_reset_every and self.kl.mode == "off" and not self.kl.monitor:
            raise ValueError("kl.reference_reset_every needs a reference model: set kl.mode or kl.monitor=true")
        if self.kl.mode != "off" and self.kl.placement == "loss" and self.kl.estimator == "k1":
            # E_pi[grad k1] = E_pi[grad log pi] = 0: as a loss term k1 pulls nowhere (algorithms/kl.py).
            raise ValueError(
                "kl.estimator=k1 in the loss (kl.placement=loss) has zero expected gradient: "
                "use kl.estimator=k3 (gradient of KL(ref||pi)) or k2 (gradient of KL(pi||ref)), or kl.placement=reward"
            )
        if self.kl.placement == "reward" and self.kl.mode == "off":
            raise ValueError("kl.placement=reward has no effect with kl.mode=off")
        if self.model.lora.enabled:
            check_lora(self)
        if self.rollout.rollouts_per_prompt < 2 and self.algorithm.advantage != "reinforce_pp":
            raise ValueError(f"algorithm.advantage={self.algorithm.advantage} needs rollout.rollouts_per_prompt >= 2")
        return self

    @property
    def prompts_per_update(self) -> int:
        return self.update.prompts_per_update or self.rollout.prompts_per_step

    @property
    def loss_constant_length(self) -> int:
        """The Dr. GRPO normaliser (loss_aggregation=constant): the run's largest generation
        budget, one constant for the whole run, so the loss scale does not drop when the
        length curriculum steps up (8k -> 20k would divide it by 2.5)."""
        return max(length for _, length in self.rollout.max_length_schedule)

    @property
    def logprob_temperature(self) -> float:
        """The temperature every log-prob of the run is taken at (old, reference, current):
        the rollouts' own, so the PPO ratio compares the distribution that sampled; greedy
        rollouts (temperature 0) score at 1."""
        return self.rollout.temperature or 1.0

    @property
    def needs_reference(self) -> bool:
        """A reference model is kept for the KL penalty or the KL monitor."""
        return self.kl.mode != "off" or self.kl.monitor

    @property
    def kl_in_reward(self) -> bool:
        """The KL penalty is subtracted from each sequence's reward (before selection and
        advantages); otherwise it is a term of the loss (section 3.1.1)."""
        return self.kl.placement == "reward"

    def kl_coefs(self, kl_coef: float) -> tuple[float, float]:
        """(in the reward, in the loss): the step's KL coefficient where the placement puts it, 0 elsewhere."""
        return (kl_coef, 0.0) if self.kl_in_reward else (0.0, kl_coef)

    @property
    def fully_on_policy(self) -> bool:
        return self.prompts_per_update == self.rollout.prompts_per_step and self.update.epochs == 1 and self.rollout.sync_weights_every == 1


def check_lora(config: RLConfig) -> None:
    """What model.lora cannot be combined with (training/lora.py), each naming the key."""
    if config.distributed.strategy == "fsdp":
        raise ValueError("model.lora trains with distributed.strategy=ddp only (FSDP shards are not adapted)")
    if config.kl.reference_reset_every:
        # The reference is the base with the adapter off: it cannot take the policy's weights.
        raise ValueError("kl.reference_reset_every cannot be used with model.lora: the reference is the frozen base model")
    if config.model.optimizer_state:
        raise ValueError("model.optimizer_state cannot be used with model.lora: a fresh adapter has no moments to continue")
    if config.rollout.backend == "vllm" and config.rollout.sync_weights_every > 1:
        raise ValueError("model.lora with rollout.backend=vllm syncs every step: set rollout.sync_weights_every=1")


def check_world_size(config: RLConfig, world_size: int) -> None:
    """Raise a ConfigError unless every rank gets an equal, non-empty share of the prompts of
    every step and of every mini-batch (the world size is only known at run time)."""
    problems = [
        f"{key} ({value}) must divide evenly over {world_size} ranks"
        for key, value in (("rollout.prompts_per_step", config.rollout.prompts_per_step), ("update.prompts_per_update", config.prompts_per_update))
        if value % world_size
    ]
    if problems:
        raise ConfigError("; ".join(problems) + f": use a multiple of {world_size} or run on fewer ranks")
