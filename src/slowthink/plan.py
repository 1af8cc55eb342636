"""The memory model: what one rank of a run holds, phase by phase, and whether it fits its device.

Must not import torch, transformers, a recipe or the CLI: pure arithmetic on a model's shape
and a run's settings (``slowthink plan`` prints it; docs/scale.md's tables come from it).

Per rank (one GPU, or one CPU process), in bytes:

* training state: weights (``model.dtype``), gradients and AdamW's two moments, all in that
  dtype (fp32 master weights: 4 + 4 + 8 = 16 bytes a parameter); FSDP divides all of it by the
  number of ranks. Gradients are made anew at each backward and freed after each RL update
  (``zero_grad(set_to_none=True)``); DDP's all-reduce buckets stay, the one resident copy: each
  new gradient is copied into its bucket and dropped (``gradient_as_bucket_view``).
* gradients accumulated over a step's earlier micro-batches, beside the next one's backward;
  under DDP's ``no_sync`` (the RL update) a second copy beside the buckets.
* KL reference: DDP a full copy in ``model.dtype``; FSDP sharded in ``distributed.param_dtype``.
* activations of one micro-batch (b sequences of T tokens): with gradient checkpointing each
  layer's input (the residual stream) plus one layer's recompute; without it every layer's
  saved tensors (about 10 H + 3 KV + 4 I values a token, counted from a Qwen2 layer's autograd).
* the LM head: ``model.logprob_chunk_size`` tokens of fp32 logits at a time (two tensors of
  chunk x V live: the logits and their softmax, whose backward writes the gradient in place), or
  the whole b x T x V logits unchunked (three such tensors, eight with the entropy; measured);
  and its V x H weight gradient, summed over the chunks in one buffer, beside a chunk's logits
  only when there are several chunks.
* FSDP: the layer being computed and the next, gathered in the compute dtype, and the root
  (embeddings, LM head) kept gathered from its forward to its backward.
* vLLM (generation, trainer asleep): the engine's share of the card, its bf16 weights over the
  tensor-parallel size and the rest as KV cache, 2 x L x KV heads x head dim x 2 bytes a token.

The update's peak is the larger of the backward (activations freed layer by layer while
gradients grow) and the optimizer step (every gradient, plus the optimizer's temporaries).
Checked against measured peak RSS on CPU (bench/bench_memory_model.py, bench/RESULTS.md). The
terms are allocations, the same on CPU and GPU but for AdamW's temporaries (``foreach_optimizer``);
what an allocator keeps of freed memory (glibc's heap, CUDA's cache) is the plan's margin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

GB = 1e9


@dataclass(frozen=True)
class ModelShape:
    """A Qwen2-style decoder: L layers of width H, MLP width I, vocabulary V, grouped-query attention."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def layer_parameters(self) -> int:
        # q and o (H x H), k and v (H x KV), the q/k/v biases, three MLP matrices, two norms.
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_width + self.hidden + 2 * self.kv_width
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def parameters(self) -> int:
        return self.layers * self.layer_parameters + self.embedding_parameters + self.hidden  # + final norm

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_width * dtype_bytes

    @classmethod
    def from_hf_config(cls, config: dict) -> ModelShape:
        """From a Hugging Face ``config.json`` (Qwen2, Llama and alike)."""
        heads = config["num_attention_heads"]
        return cls(
            layers=config["num_hidden_layers"],
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            vocab=config["vocab_size"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            tied=bool(config.get("tie_word_embeddings", False)),
        )


# The presets' models, so that planning needs no model hub (their config.json values).
KNOWN_MODELS: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-0.5B": ModelShape(24, 896, 4864, 151936, 14, 2, tied=True),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": ModelShape(28, 1536, 8960, 151936, 12, 2),
    "Qwen/Qwen2.5-1.5B": ModelShape(28, 1536, 8960, 151936, 12, 2, tied=True),
    "Qwen/Qwen2.5-7B": ModelShape(28, 3584, 18944, 152064, 28, 4),
    "Qwen/Qwen2.5-32B": ModelShape(64, 5120, 27648, 152064, 40, 8),
}


def model_shape(path: str) -> ModelShape:
    """A known preset model by its hub id, or a local folder's ``config.json``."""
    if path in KNOWN_MODELS:
        return KNOWN_MODELS[path]
    config = Path(path) / "config.json"
    if not config.is_file():
        known = ", ".join(KNOWN_MODELS)
        raise ValueError(f"model.path {path!r}: no config.json there, and not a model the planner knows ({known})")
    return ModelShape.from_hf_config(json.loads(config.read_text()))


@dataclass(frozen=True)
class RunShape:
    """The settings that decide memory, per rank. Bytes are per value (4 fp32, 2 bf16)."""

    ranks: int = 1
    strategy: Literal["ddp", "fsdp"] = "ddp"
    master_bytes: int = 4  # model.dtype: weights, gradients and AdamW's two moments
    compute_bytes: int = 4  # model.autocast or distributed.param_dtype, else model.dtype
    reference: bool = False  # a KL reference (kl.mode other than off, or kl.monitor)
    sequence: int = 2048  # T: prompt + response tokens of the longest sequence
    micro_batch: int = 1  # b: update.micro_batch_size (sft: train.micro_batch_size)
    micro_batches: int = 1  # micro-batches a rank accumulates into one optimizer step
    sync_every_micro_batch: bool = False  # DDP all-reduces at each micro-batch (sft), not at the last only (rl's no_sync)
    gradient_checkpointing: bool = False
    logprob_chunk: int = 1024  # 0: the whole logits tensor
    vllm: bool = False
    gpu_memory_utilization: float = 0.5
    tensor_parallel: int = 1
    entropy: bool = False  # the entropy is computed (RL's algorithm.entropy_coef > 0, or logged)
    foreach_optimizer: bool = True  # CUDA's AdamW updates all tensors at once; on the CPU one at a time

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.ranks > 1


@dataclass(frozen=True)
class Estimate:
    """Bytes per rank by phase; ``parts`` names each term."""

    update_peak: float
    generation_peak: float
    parts: dict[str, float] = field(default_factory=dict)
    kv_tokens: float = 0.0

    @property
    def peak(self) -> float:
        return max(self.update_peak, self.generation_peak)


def training_state(model: ModelShape, run: RunShape) -> dict[str, float]:
    share = 1 / run.ranks if run.sharded else 1
    parameters = model.parameters
    return {
        "weights": parameters * run.master_bytes * share,
        "gradients": parameters * run.master_bytes * share,
        "moments": parameters * 2 * run.master_bytes * share,  # AdamW keeps them in the weights' dtype
    }


def reference_bytes(model: ModelShape, run: RunShape) -> float:
    if not run.reference:
        return 0.0
    if run.sharded:
        return model.parameters * run.compute_bytes / run.ranks
    return model.parameters * run.master_bytes


def layer_activations(model: ModelShape, run: RunShape) -> float:
    """One layer's saved tensors for one micro-batch (what its backward needs)."""
    per_token = 10 * model.hidden + 3 * model.kv_width + 4 * model.intermediate
    return run.micro_batch * run.sequence * per_token * run.compute_bytes


def activations(model: ModelShape, run: RunShape) -> float:
    """Everything the backward keeps for one micro-batch, before it starts."""
    tokens = run.micro_batch * run.sequence
    # The residual stream stays in the master dtype under autocast, in param_dtype under FSDP.
    residual_bytes = run.compute_bytes if run.sharded else run.master_bytes
    edges = 3 * tokens * model.hidden * residual_bytes  # embeddings' output, the final norm's input and output
    if run.gradient_checkpointing:
        return model.layers * tokens * model.hidden * residual_bytes + edges
    return model.layers * layer_activations(model, run) + edges


def logits_bytes(model: ModelShape, run: RunShape) -> float:
    tokens = run.micro_batch * run.sequence
    if run.logprob_chunk:
        return 2 * min(run.logprob_chunk, tokens) * model.vocab * 4
    # The logits, their log-softmax and its gradient; the entropy's softmax and its terms add
    # five more (bench/RESULTS.md measures both).
    return (8 if run.entropy else 3) * tokens * model.vocab * 4


def head_weight_bytes(run: RunShape) -> int:
    """Bytes a value of the LM head's weight as the head computes with it, and so of its gradient:
    FSDP's unsharded parameter is in ``param_dtype``; otherwise the weight is the master copy
    (under autocast the chunked backward casts its bf16 product back to it, training/logprobs.py)."""
    return run.compute_bytes if run.sharded else run.master_bytes


def head_gradient(model: ModelShape, run: RunShape) -> float:
    """The LM head's weight gradient, V x H. Autograd sums the chunks' gradients into one buffer
    in place: it exists once, not per chunk, from the backward's first chunk until the buffer is
    handed to ``.grad`` (after the last chunk; after the embeddings' backward when tied)."""
    return model.vocab * model.hidden * head_weight_bytes(run)


def head_working(model: ModelShape, run: RunShape) -> float:
    """The LM head's backward beyond the kept activations, at its largest.

    A chunk's backward holds two fp32 chunk x V tensors (the recomputed log-softmax and the
    softmax it turns into the logits' gradient), then one (that gradient, in the compute
    dtype) beside the chunk's V x H weight gradient (in the compute dtype, plus its cast to
    the weight's dtype when they differ). With several chunks, the sum of the chunks already
    done sits beside both; with one chunk there is no sum yet.
    """
    tokens = run.micro_batch * run.sequence
    chunk_tokens = min(run.logprob_chunk, tokens) if run.logprob_chunk else tokens
    weight_bytes = head_weight_bytes(run)
    product = model.vocab * model.hidden * (run.compute_bytes + (weight_bytes if weight_bytes != run.compute_bytes else 0))
    weight_gradient = chunk_tokens * model.vocab * run.compute_bytes + product
    chunks = -(-tokens // chunk_tokens)
    return max(logits_bytes(model, run), weight_gradient) + (head_gradient(model, run) if chunks > 1 else 0.0)


def gradients_at_the_end(model: ModelShape, run: RunShape, state: dict[str, float]) -> float:
    """Gradients held when the backward ends, beyond the resident state (DDP's buckets are in it).

    With ``zero_grad(set_to_none=True)`` every parameter's gradient is a new tensor at each
    backward. A single process keeps them all, and a tied LM head's summed gradient meets the
    embeddings' own V x H before autograd adds the two. DDP copies each into its bucket and drops
    it, so only that pair (one V x H untied) is there at once. FSDP keeps the sharded gradients
    and its root's unsharded pair until the root's reduce-scatter.
    """
    pair = model.vocab * model.hidden * head_weight_bytes(run)
    if run.strategy == "ddp" and run.ranks > 1:
        return pair * (2 if model.tied else 1)
    if run.sharded:
        return state["gradients"] + 2 * pair
    return state["gradients"] + (pair if model.tied else 0.0)


def gradients_across_micro_batches(run: RunShape, state: dict[str, float]) -> float:
    """Gradients already there when a later micro-batch's backward starts, beyond the resident state.

    A single process and FSDP hold the sum so far (FSDP sharded). DDP inside ``no_sync``
    accumulates into ``.grad`` tensors of its own, a second full copy beside its buckets until
    the last micro-batch copies them in (the RL update); when it all-reduces every micro-batch
    the gradients are views of the buckets from the first on (SFT).
    """
    if run.micro_batches <= 1:
        return 0.0
    if run.strategy == "ddp" and run.ranks > 1 and run.sync_every_micro_batch:
        return 0.0
    return state["gradients"]


def gathered_bytes(model: ModelShape, run: RunShape) -> float:
    """FSDP: two layers and the root (embeddings, LM head) gathered in the compute dtype."""
    if not run.sharded:
        return 0.0
    return (2 * model.layer_parameters + model.embedding_parameters) * run.compute_bytes


def estimate(model: ModelShape, run: RunShape, gpu_memory: float = 0.0) -> Estimate:
    """Peak bytes per rank of the update and (with vLLM) of generation; ``gpu_memory`` sizes the engine."""
    state = training_state(model, run)
    reference = reference_bytes(model, run)
    acts, logits, gathered = activations(model, run), logits_bytes(model, run), gathered_bytes(model, run)
    working = layer_activations(model, run) if run.gradient_checkpointing else 0.0
    share = 1 / run.ranks if run.sharded else 1
    ddp = run.strategy == "ddp" and run.ranks > 1
    resident = state["weights"] + state["moments"] + reference + gathered
    if ddp:
        # DDP's all-reduce buckets: allocated once, the one resident copy of the gradients (with
        # gradient_as_bucket_view the .grad tensors become views of them after each backward).
        resident += state["gradients"]
    # Backward: it opens with the LM head's chunks over every kept activation, then frees a
    # layer's activations as that layer's gradients appear, and ends at the embeddings.
    head = head_working(model, run)
    accumulated = gradients_across_micro_batches(run, state)
    backward = resident + max(accumulated + acts + max(head, working), gradients_at_the_end(model, run, state) + working)
    # Optimizer step: every gradient, plus AdamW's temporaries: under foreach (CUDA) one
    # sqrt(v) per tensor, all at once; one tensor at a time otherwise, sqrt(v) and its quotient.
    largest = max(model.embedding_parameters // (1 if model.tied else 2), model.hidden * model.intermediate) * run.master_bytes * share
    temporaries = state["weights"] if run.foreach_optimizer else 2 * largest
    step = resident + (0.0 if ddp else state["gradients"]) + temporaries
    parts = {**state, "reference": reference, "activations": acts, "logits": logits, "LM head gradient": head_gradient(model, run)}
    parts.update({"gathered": gathered, "optimizer temporaries": temporaries})
    if ddp:
        parts["gradients beside the buckets (no_sync)"] = accumulated
    update_peak = max(backward, step)
    if not run.vllm:
        return Estimate(update_peak=update_peak, generation_peak=0.0, parts=parts)
    # Generation: the trainer's gradients are freed (DDP's buckets stay); vLLM takes its share.
    trainer = state["weights"] + state["moments"] + reference + (state["gradients"] if ddp else 0.0)
    engine = run.gpu_memory_utilization * gpu_memory
    engine_weights = model.parameters * 2 / run.tensor_parallel
    kv = max(engine - engine_weights, 0.0)
    parts.update({"vllm weights": engine_weights, "kv cache": kv})
    kv_tokens = kv * run.tensor_parallel / model.kv_bytes_per_token()
    return Estimate(update_peak=update_peak, generation_peak=trainer + engine, parts=parts, kv_tokens=kv_tokens)


def advice(model: ModelShape, run: RunShape, gpu_memory: float, margin: float = 0.9, micro_batch_key: str = "update.micro_batch_size") -> list[str]:
    """What to change when the run does not fit ``margin`` of the device (empty when it does);
    ``micro_batch_key`` is the recipe's name for b (SFT's is ``train.micro_batch_size``)."""
    budget = margin * gpu_memory
    result = estimate(model, run, gpu_memory)
    tips: list[str] = []
    if result.update_peak > budget:
        if run.strategy == "ddp" and training_state(model, run)["weights"] * 4 > budget / 2:
            tips.append("distributed.strategy=fsdp: the training state alone takes most of the device")
        if not run.gradient_checkpointing:
            tips.append("model.gradient_checkpointing=true")
        if run.micro_batch > 1:
            tips.append(f"{micro_batch_key}={max(run.micro_batch // 2, 1)}")
        if not run.logprob_chunk or run.logprob_chunk > 1024:
            tips.append("model.logprob_chunk_size=1024")
        if run.sharded and not tips:
            tips.append(f"more GPUs: {run.ranks * 2} shard the training state twice as finely")
    if run.vllm and result.generation_peak > budget:
        tips.append(f"rollout.vllm.gpu_memory_utilization below {run.gpu_memory_utilization}: the trainer's resident state needs the rest")
    if run.vllm and result.kv_tokens < run.sequence:
        tips.append(f"rollout.vllm.tensor_parallel_size above {run.tensor_parallel}: the KV cache holds less than one sequence")
    return tips
