"""Per-token log-probs and entropy of a model on a ``SequenceBatch``, in chunks over the sequence.

A long chain of thought makes the logits the largest tensor of a step: B x T x V floats,
12 GB in float32 for one 20k-token response over Qwen2.5's 151,936-token vocabulary (the
paper's STILL-3-1.5B trains at 20k-29k tokens, section 3.2). So the model is run only up
to its final hidden states, and the LM head is applied ``chunk_size`` tokens at a time:
each chunk's logits live only while its log-probs and entropy are taken, and the backward
recomputes them from the hidden states instead of keeping them. No B x T x V tensor exists
at any point; values and gradients equal the unchunked computation up to float rounding
(tests/training/test_logprobs.py; peak memory in bench/RESULTS.md).

How a model computes (chunk size, autocast, gradient checkpointing) is its
``MemoryPlan`` (slowthink.models.modeling), set once when the recipe loads it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from slowthink.algorithms.kl import entropy_from_logits
from slowthink.models.modeling import MemoryPlan, memory_plan


def forward_logprobs(
    model: Any,
    input_ids_BL: torch.Tensor,
    attention_mask_BL: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    plan: MemoryPlan | None = None,
    position_ids_BL: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprobs_BT, entropy_BT or None) of each next token under softmax(logits / temperature).

    The rollout temperature is applied here too, so that a fully on-policy step sees the
    same distribution the sampler drew from (importance ratio exactly 1). ``plan``
    defaults to the model's own (``slowthink.models.modeling.set_memory_plan``). Packed SFT rows
    pass a (B, 1, L, L) block-diagonal mask and per-sequence ``position_ids_BL``
    (training/packing.py).
    """
    plan = plan or memory_plan(model)
    targets_BT = input_ids_BL[:, 1:]
    with _autocast(plan, input_ids_BL.device), _training_forward(model, plan):
        if plan.logprob_chunk_size <= 0:
            logits_BLV = model(input_ids=input_ids_BL, attention_mask=attention_mask_BL, position_ids=position_ids_BL, use_cache=False).logits
            return _token_logprobs(logits_BLV[:, :-1], targets_BT, temperature, with_entropy)
        hidden_BLH, head = final_hidden_states(model, input_ids_BL, attention_mask_BL, position_ids_BL)
        return chunked_logprobs(hidden_BLH[:, :-1], head.weight, head.bias, targets_BT, temperature, plan.logprob_chunk_size, with_entropy)


def _token_logprobs(
    logits_BTV: torch.Tensor, targets_BT: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each target and (optionally) the entropy, in float32 whatever the compute dtype."""
    logits_BTV = logits_BTV.float()
    if temperature not in (0.0, 1.0):
        logits_BTV = logits_BTV / temperature
    logprobs_BT = torch.log_softmax(logits_BTV, dim=-1).gather(-1, targets_BT.unsqueeze(-1)).squeeze(-1)
    entropy_BT = entropy_from_logits(logits_BTV) if with_entropy else None
    return logprobs_BT, entropy_BT


def final_hidden_states(
    model: Any, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor, position_ids_BL: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.nn.Module]:
    """(hidden_BLH after the final norm, the LM head module), without computing any logits.

    The call goes through ``model`` itself, wrapper included, so DDP's gradient hooks and
    FSDP's all-gathers run as in a normal forward; ``logits_to_keep`` set to no positions
    makes the model skip its own LM head, and a hook on the decoder catches its output.
    """
    inner = getattr(model, "module", model)  # DDP keeps the model as .module; FSDP2 shards in place
    decoder, head = inner.get_decoder(), inner.get_output_embeddings()
    captured: list[torch.Tensor] = []

    def keep(_module: Any, _args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output.last_hidden_state)

    handle = decoder.register_forward_hook(keep)
    try:
        no_positions = torch.empty(0, dtype=torch.long, device=input_ids_BL.device)
        model(input_ids=input_ids_BL, attention_mask=attention_mask_BL, position_ids=position_ids_BL, use_cache=False, logits_to_keep=no_positions)
    finally:
        handle.remove()
    return captured[-1], head


def chunked_logprobs(
    hidden_BTH: torch.Tensor,
    weight_VH: torch.Tensor,
    bias_V: torch.Tensor | None,
    targets_BT: torch.Tensor,
    temperature: float,
    chunk_size: int,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropy) of ``targets_BT`` under ``hidden_BTH @ weight_VH.T``, ``chunk_size`` tokens at a time.

    Each chunk is a ``HeadLogprobs`` call: it keeps no logits for the backward, which
    recomputes them, so peak memory holds one chunk's logits and two tensors of their size.
    """
    B, T, H = hidden_BTH.shape
    hidden_NH, targets_N = hidden_BTH.reshape(B * T, H), targets_BT.reshape(B * T)
    logprobs, entropies = [], []
    for start in range(0, B * T, chunk_size):
        stop = start + chunk_size
        logprobs_N, entropy_N = HeadLogprobs.apply(hidden_NH[start:stop], weight_VH, bias_V, targets_N[start:stop], temperature, with_entropy)
        logprobs.append(logprobs_N)
        entropies.append(entropy_N)
    logprobs_BT = torch.cat(logprobs).view(B, T) if logprobs else hidden_BTH.new_zeros(B, T, dtype=torch.float32)
    if not with_entropy:
        return logprobs_BT, None
    entropy_BT = torch.cat(entropies).view(B, T) if entropies else torch.zeros_like(logprobs_BT)
    return logprobs_BT, entropy_BT


class HeadLogprobs(torch.autograd.Function):
    """log p(target) and the entropy H of softmax(z), z = (h W^T + b) / temperature, for N tokens.

    The gradient is written out instead of taped, so the backward needs only h, W and the
    targets: with log p = log_softmax(z) and p = exp(log p),

        d log p(t) / dz = onehot(t) - p          dH / dz = -p * (log p + H)

    and the (N, V) buffers are reused in place. Logits and softmax are float32 whatever the
    compute dtype (autocast, FSDP's param_dtype).
    """

    @staticmethod
    def forward(ctx, hidden_NH, weight_VH, bias_V, targets_N, temperature: float, with_entropy: bool):
        ctx.autocast = _autocast_state(hidden_NH.device)
        logprobs_NV = _log_softmax(hidden_NH, weight_VH, bias_V, temperature)
        logprobs_N = logprobs_NV.gather(-1, targets_N.unsqueeze(-1)).squeeze(-1)
        entropy_N = -(logprobs_NV.exp().mul_(logprobs_NV)).sum(-1) if with_entropy else logprobs_N.new_zeros(0)
        ctx.temperature, ctx.with_entropy = temperature, with_entropy
        ctx.save_for_backward(hidden_NH, weight_VH, bias_V, targets_N, entropy_N)
        return logprobs_N, entropy_N

    @staticmethod
    def backward(ctx, grad_logprobs_N, grad_entropy_N):
        hidden_NH, weight_VH, bias_V, targets_N, entropy_N = ctx.saved_tensors
        with _restore_autocast(ctx.autocast, hidden_NH.device):
            logprobs_NV = _log_softmax(hidden_NH, weight_VH, bias_V, ctx.temperature)
        probs_NV = logprobs_NV.exp()
        # coefficient_NV = g_lp + g_H * (log p + H), in log p's buffer
        coefficient_NV = logprobs_NV
        if ctx.with_entropy and grad_entropy_N is not None:
            coefficient_NV.add_(entropy_N.unsqueeze(-1)).mul_(grad_entropy_N.unsqueeze(-1)).add_(grad_logprobs_N.unsqueeze(-1))
        else:
            coefficient_NV.copy_(grad_logprobs_N.unsqueeze(-1).expand_as(coefficient_NV))
        # dL/dz = -p * coefficient + onehot(t) * g_lp, in p's buffer; then through z = (hW^T + b) / temperature.
        grad_z_NV = probs_NV.mul_(coefficient_NV).neg_()
        del coefficient_NV, logprobs_NV
        grad_z_NV.scatter_add_(-1, targets_N.unsqueeze(-1), grad_logprobs_N.unsqueeze(-1).float())
        if ctx.temperature not in (0.0, 1.0):
            grad_z_NV.div_(ctx.temperature)
        if bias_V is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_z_NV.sum(0).to(bias_V.dtype)
        else:
            grad_bias = None
        # The two matmuls run in the forward's compute dtype, as autograd would run them: a
        # float32 copy of a bf16 V x H head would cost more than the chunk's logits.
        compute = ctx.autocast or weight_VH.dtype
        grad_z_NV = grad_z_NV.to(compute)
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = (grad_z_NV @ weight_VH.to(compute)).to(hidden_NH.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_z_NV.T @ hidden_NH.to(compute)).to(weight_VH.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def _log_softmax(hidden_NH, weight_VH, bias_V, temperature: float) -> torch.Tensor:
    logits_NV = F.linear(hidden_NH, weight_VH, bias_V).float()
    if temperature not in (0.0, 1.0):
        logits_NV = logits_NV.div_(temperature)  # a fresh tensor: no autograd inside a Function's forward/backward
    return torch.log_softmax(logits_NV, dim=-1)


def _autocast_state(device: torch.device) -> torch.dtype | None:
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None


def _restore_autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    # The backward runs outside the forward's autocast: recompute the logits as the forward did.
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _autocast(plan: MemoryPlan, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed-precision compute when the plan asks for it (weights stay in their stored dtype)."""
    if plan.autocast == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, plan.autocast))


@contextlib.contextmanager
def _training_forward(model: Any, plan: MemoryPlan):
    """Training mode for the duration of a gradient-taking forward with gradient checkpointing.

    Hugging Face checkpoints layers only in training mode; the RL model otherwise stays in
    eval mode, since the same module samples rollouts, where training mode would turn the
    KV cache off.
    """
    if not (plan.gradient_checkpointing and torch.is_grad_enabled()) or model.training:
        yield
        return
    model.train()
    try:
        yield
    finally:
        model.eval()


@torch.no_grad()
def batched_logprobs(model: Any, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor, temperature: float, micro_batch: int) -> torch.Tensor:
    """No-grad log-probs in micro-batches (old-policy and reference passes), on the inputs' device.

    The rows stay where the recipe keeps them (the CPU): each micro-batch goes to the
    model's device for its forward, and its log-probs come back at once, so a GPU holds one
    micro-batch of them at a time.
    """
    device = model_device(model)
    chunks = []
    for start in range(0, input_ids_BL.shape[0], micro_batch):
        stop = start + micro_batch
        ids_BL, mask_BL = input_ids_BL[start:stop].to(device), attention_mask_BL[start:stop].to(device)
        logprobs_BT, _ = forward_logprobs(model, ids_BL, mask_BL, temperature)
        chunks.append(logprobs_BT.to(input_ids_BL.device))
    return torch.cat(chunks)


def model_device(model: Any) -> torch.device:
    """Where a model's inputs must be: its parameters' device (an FSDP2 shard's local device)."""
    return next(model.parameters()).device
