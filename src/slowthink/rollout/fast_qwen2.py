"""Fast decoding for the Qwen2 / Llama family: a static KV cache and a hand-written forward.

A decode step of the generic path (``rollout/hf.py``) spends almost all its time outside the
model's arithmetic: the transformers forward rebuilds masks and grows its cache by
concatenation, and a Python loop over rows records tokens and decodes text to look for
stop strings. Here:

- the KV cache is preallocated once per batch, ``(B, H_kv, prompt width + max new, D)`` per
  layer, and a step writes one column;
- the forward reuses the Hugging Face module's own weights and submodules (embedding,
  RMSNorms, rotary embedding, projections, SwiGLU MLP, LM head), so the weights the trainer
  updates are the weights sampled from, with grouped-query attention written out over the
  cache and logits computed for the last position only;
- sampling, EOS and length bookkeeping are tensor ops over the batch (``fast_sampling.py``),
  stop strings are checked only for rows whose token could complete one (``stop_ids.py``);
- rows that finish are dropped from the batch (compaction) once a quarter of it is done,
  so long tails do not keep paying for finished rows.

Greedy output equals the generic path's token for token; sampling draws from the same
distribution with a different random stream (``fast_sampling.row_keys``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from slowthink.rollout.fast_sampling import sample_from_uniforms, uniforms
from slowthink.rollout.generator import Completion, OnFinished, SamplingParams
from slowthink.rollout.stop_ids import StopMasks
from slowthink.training.lora import causal_lm, merged_weight

FAST_MODEL_TYPES = ("qwen2", "llama")
# Compact the batch once this fraction of its rows has finished.
COMPACT_FRACTION = 0.25


def unsupported_reason(model: Any, dtype: torch.dtype | None = None) -> str | None:
    """Why ``model`` must take the generic path, or None when the fast path can decode it
    (exactly, in float32; in ``dtype`` bfloat16 when asked for). A LoRA policy is read through
    its base module, each adapter merged into its weight per batch (training/lora.py)."""
    model = causal_lm(model)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in FAST_MODEL_TYPES:
        return f"model type {model_type!r} is not one of {FAST_MODEL_TYPES}"
    if getattr(config, "use_sliding_window", False):
        return "sliding-window attention"
    body = getattr(model, "model", None)
    if body is None or not hasattr(body, "rotary_emb") or not hasattr(model, "lm_head"):
        return "not the standard <Family>ForCausalLM layout"
    attention = body.layers[0].self_attn if len(body.layers) else None
    if attention is None or not all(hasattr(attention, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return "not the standard attention layout"
    if any(hasattr(attention, n) for n in ("q_norm", "k_norm")):
        return "query/key norms"
    weights_dtype = next(model.parameters()).dtype
    if dtype is not None and dtype not in (torch.float32, torch.bfloat16):
        return f"generation dtype {dtype} (float32 or bfloat16 only)"
    if dtype == torch.bfloat16:
        if not all(plain_swiglu(layer.mlp) for layer in body.layers):
            return "bfloat16 generation needs a SwiGLU MLP without biases"
    elif weights_dtype != torch.float32:
        # In 16-bit the fused ops round differently from transformers' and greedy decoding
        # drifts after a dozen tokens; the identity with the generic path is kept for fp32.
        return f"weights in {weights_dtype} (the fast path is exact against the generic loop in float32 only; ask for bfloat16 generation explicitly)"
    return None


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU has bf16 matmul instructions (AVX512-BF16 or AMX), from
    /proc/cpuinfo's flags; None where that cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class LayerWeights:
    """One decoder layer's weights as the fast forward uses them, in its compute dtype.

    q|k|v are fused with the attention scale folded into the query rows (RoPE is linear, so
    scaling before or after the rotation is the same). SwiGLU without biases fuses gate and
    up (``gate_up`` None: the module's own MLP runs, in float32 only).
    """

    input_norm: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    o_bias: torch.Tensor | None
    post_norm: torch.Tensor
    gate_up: torch.Tensor | None
    down: torch.Tensor | None


def plain_swiglu(mlp: Any) -> bool:
    """A SwiGLU MLP without biases (gate and up fuse into one matmul)."""
    return (
        getattr(mlp, "gate_proj", None) is not None
        and mlp.gate_proj.bias is None
        and mlp.up_proj.bias is None
        and mlp.down_proj.bias is None
        and getattr(getattr(mlp, "config", None), "hidden_act", None) == "silu"
    )


def layer_weights(layer: Any, scaling: float, dtype: torch.dtype) -> LayerWeights:
    """Copies of one layer's weights in ``dtype`` (fresh per batch: the trainer's updates are seen)."""
    attention, mlp = layer.self_attn, layer.mlp
    projections = (attention.q_proj, attention.k_proj, attention.v_proj)
    q_rows = attention.q_proj.out_features
    qkv = torch.cat([merged_weight(p) for p in projections]).detach().to(dtype=torch.float32, copy=True)
    qkv[:q_rows] *= scaling
    qkv_bias = None
    if any(p.bias is not None for p in projections):
        qkv_bias = torch.cat([p.bias if p.bias is not None else qkv.new_zeros(p.out_features) for p in projections])
        qkv_bias = qkv_bias.detach().to(dtype=torch.float32, copy=True)
        qkv_bias[:q_rows] *= scaling
        qkv_bias = qkv_bias.to(dtype)
    fused = plain_swiglu(mlp)

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to(dtype)

    return LayerWeights(
        input_norm=cast(layer.input_layernorm.weight),
        qkv=qkv.to(dtype),
        qkv_bias=qkv_bias,
        o=cast(merged_weight(attention.o_proj)),
        o_bias=cast(attention.o_proj.bias),
        post_norm=cast(layer.post_attention_layernorm.weight),
        gate_up=torch.cat([merged_weight(mlp.gate_proj), merged_weight(mlp.up_proj)]).detach().to(dtype) if fused else None,
        down=cast(merged_weight(mlp.down_proj)) if fused else None,
    )


class StaticDecoder:
    """One batch's KV cache and forward over a Qwen2/Llama ``ForCausalLM`` module.

    Weight copies (fused projections, in ``dtype``) are made per batch, so the trainer's
    updates between ``generate`` calls are always seen; RoPE's cos/sin are tabled once for
    every position. ``dtype`` bfloat16 runs the matmuls, the residual stream and the cache in
    bfloat16 (softmax and sampling in float32): about twice the matmul rate on CPUs with
    AVX512-BF16 or AMX, and half the cache traffic.
    """

    def __init__(self, model: Any, batch: int, max_len: int, dtype: torch.dtype | None = None):
        model = causal_lm(model)  # a LoRA policy's base module (adapters merged per weight below)
        self.model, self.body = model, model.model
        config = model.config
        attention = self.body.layers[0].self_attn
        self.head_dim = attention.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.eps = [(layer.input_layernorm.variance_epsilon, layer.post_attention_layernorm.variance_epsilon) for layer in self.body.layers]
        scaling = getattr(attention, "scaling", self.head_dim**-0.5)
        param = next(model.parameters())
        self.dtype = dtype = dtype or param.dtype
        shape = (batch, self.kv_heads, max_len, self.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=param.device) for _ in self.body.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=param.device) for _ in self.body.layers]
        self.layers = [layer_weights(layer, scaling, dtype) for layer in self.body.layers]
        self.final_norm = self.body.norm.weight.detach().to(dtype)
        self.lm_head = self.model.lm_head.weight.detach().to(dtype)
        self.lm_head_bias = None if self.model.lm_head.bias is None else self.model.lm_head.bias.detach().to(dtype)
        # Additive attention bias per key column: 0 where the key is a real token, -inf for padding.
        self.key_bias = torch.zeros((batch, max_len), dtype=torch.float32, device=param.device)
        # RoPE tables (positions, D) from the module's own rotary embedding (any rope scaling):
        # x * cos + rotate_half(x) * sin == x * cos + roll(x, D/2) * [-sin_1, sin_2].
        probe = torch.zeros((1, 1, config.hidden_size), dtype=param.dtype, device=param.device)
        cos, sin = self.body.rotary_emb(probe, torch.arange(max_len, device=param.device)[None])
        half = self.head_dim // 2
        self.cos, self.sin = cos[0].to(dtype), torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1).to(dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return x * cos + x.roll(self.head_dim // 2, dims=-1) * sin

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the batch (compaction after rows finish)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]
        self.key_bias = self.key_bias[rows]

    def forward(self, input_ids_BT: torch.Tensor, position_ids_BT: torch.Tensor, start: int, query_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Run tokens at cache columns [start, start + T); return the last position's logits (B, V), float32.

        ``query_bias`` (B, T, start + T) is the prefill's causal-and-padding mask; a decode
        step (T = 1) attends to every filled column of ``key_bias``.
        """
        batch, length = input_ids_BT.shape
        end = start + length
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        groups = heads // kv_heads
        hidden_BTC = self.body.embed_tokens(input_ids_BT).to(self.dtype)
        cos, sin = self.cos[position_ids_BT][:, :, None], self.sin[position_ids_BT][:, :, None]  # (B, T, 1, D)
        # (B, 1, 1, T or 1, end): broadcast over KV heads and the query heads of a group.
        bias = (query_bias if query_bias is not None else self.key_bias[:, None, :end])[:, None, None]
        width = (hidden_BTC.shape[-1],)
        for module, w, (eps_in, eps_post), key_cache, value_cache in zip(self.body.layers, self.layers, self.eps, self.keys, self.values):
            qkv = F.linear(F.rms_norm(hidden_BTC, width, w.input_norm, eps_in), w.qkv, w.qkv_bias)
            qkv = qkv.view(batch, length, heads + 2 * kv_heads, dim)
            # Queries and keys rotated in one go; (B, T, heads, D) -> (B, heads, T, D).
            qk = self._rope(qkv[:, :, : heads + kv_heads], cos, sin).transpose(1, 2)
            key_cache[:, :, start:end] = qk[:, heads:]
            value_cache[:, :, start:end] = qkv[:, :, heads + kv_heads :].transpose(1, 2)
            # Query head h reads KV head h // groups (Hugging Face's repeat_kv): a group's
            # queries are stacked along the query axis, so the cache is never copied.
            q = qk[:, :heads].reshape(batch, kv_heads, groups * length, dim)
            scores = torch.matmul(q, key_cache[:, :, :end].transpose(-1, -2))
            weights = torch.softmax(scores.view(batch, kv_heads, groups, length, end) + bias, dim=-1, dtype=torch.float32)
            out = torch.matmul(weights.to(q.dtype).view(batch, kv_heads, groups * length, end), value_cache[:, :, :end])
            out = out.view(batch, heads, length, dim).transpose(1, 2).reshape(batch, length, heads * dim)
            hidden_BTC = hidden_BTC + F.linear(out, w.o, w.o_bias)
            normed = F.rms_norm(hidden_BTC, width, w.post_norm, eps_post)
            if w.gate_up is None:
                hidden_BTC = hidden_BTC + module.mlp(normed)
            else:
                gate, up = F.linear(normed, w.gate_up).chunk(2, dim=-1)
                hidden_BTC = hidden_BTC + F.linear(F.silu(gate) * up, w.down)
        last = F.rms_norm(hidden_BTC[:, -1], width, self.final_norm, self.body.norm.variance_epsilon)
        return F.linear(last, self.lm_head, self.lm_head_bias).float()


class FastDecodeLoop:
    """Decodes batches for an ``HFGenerator`` whose model passes ``unsupported_reason``."""

    def __init__(self, generator: Any, dtype: torch.dtype | None = None):
        self.generator = generator
        self.dtype = dtype  # compute dtype (None: the weights' own)
        self.stop_masks = StopMasks()
        if dtype == torch.bfloat16 and generator._device.type == "cpu" and cpu_has_bf16() is False:
            warnings.warn(
                "bfloat16 generation on a CPU without AVX512-BF16 or AMX: bf16 matmuls are emulated there and "
                "slower than float32 (rollout.generation_dtype=float32 is the faster choice)",
                stacklevel=3,
            )

    @torch.inference_mode()
    def generate_batch(
        self, jobs: list[tuple[int, list[int]]], params: SamplingParams, keys_B: torch.Tensor, offset: int = 0, on_finished: OnFinished | None = None
    ) -> list[Completion]:
        """Decode one batch; ``on_finished`` gets (``offset`` + row, completion) as rows end."""
        gen, device = self.generator, self.generator._device
        batch, width = len(jobs), max(len(ids) for _, ids in jobs)
        max_new = params.max_new_tokens
        input_ids = torch.full((batch, width), gen.pad_id, dtype=torch.long, device=device)
        real = torch.zeros((batch, width), dtype=torch.bool, device=device)
        for row, (_, ids) in enumerate(jobs):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            real[row, width - len(ids) :] = True
        decoder = StaticDecoder(gen.model, batch, width + max_new, self.dtype)
        decoder.key_bias[:, :width].masked_fill_(~real, float("-inf"))
        # Prefill: causal over real tokens; a padding query also sees itself (a fully masked
        # row would be NaN and poison later layers through its keys).
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril()
        allowed = (causal[None] & real[:, None, :]) | torch.eye(width, dtype=torch.bool, device=device)[None]
        query_bias = torch.zeros(allowed.shape, dtype=decoder.key_bias.dtype, device=device)
        query_bias.masked_fill_(~allowed, float("-inf"))
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        logits_BV = decoder.forward(input_ids, positions, 0, query_bias)
        next_position = positions[:, -1] + 1

        eos = torch.tensor(sorted(gen.eos_ids), dtype=torch.long)
        stop_candidates = self.stop_masks.get(gen.tokenizer, params.stop, logits_BV.shape[-1]) if params.stop else None
        max_stop_chars = max((len(s) for s in params.stop), default=0)
        # Per original row: tokens and log-probs by step, the length so far, how it ended.
        tokens = torch.full((batch, max_new), gen.pad_id, dtype=torch.long)
        logprobs = torch.zeros((batch, max_new), dtype=torch.float32)
        lengths = torch.full((batch,), max_new, dtype=torch.long)
        stopped = torch.zeros(batch, dtype=torch.bool)
        stop_hit: list[str | None] = [None] * batch
        done: list[Completion | None] = [None] * batch
        # Per row still in the batch: its original row, whether it is running, its random numbers.
        rows = torch.arange(batch)
        active = torch.ones(batch, dtype=torch.bool)
        uniforms_BS = uniforms(keys_B, max_new)
        for step in range(max_new):
            chosen, chosen_logprobs = sample_from_uniforms(logits_BV, params.temperature, params.top_p, uniforms_BS[:, step])
            chosen, chosen_logprobs = chosen.cpu(), chosen_logprobs.cpu()
            # Finished rows not yet compacted away sample too; their draws are never recorded.
            live = rows[active]
            tokens[live, step], logprobs[live, step] = chosen[active], chosen_logprobs[active]
            ended = active & torch.isin(chosen, eos)
            if stop_candidates is not None:
                ended |= self._stops(active & ~ended, chosen, rows, tokens, step, stop_candidates, params.stop, max_stop_chars, stop_hit)
            finished_rows = rows[ended]
            stopped[finished_rows], lengths[finished_rows] = True, step + 1
            if on_finished is not None and len(finished_rows):
                # Handed over now (e.g. to the reward's checker), while the other rows decode on.
                ended_now = finished_rows.tolist()
                for row in ended_now:
                    done[row] = self._completion(jobs[row][0], tokens[row], logprobs[row], step + 1, True, stop_hit[row])
                on_finished([(offset + row, done[row]) for row in ended_now])
            active &= ~ended
            remaining = int(active.sum())
            if remaining == 0 or step == max_new - 1:
                break
            if len(rows) - remaining >= COMPACT_FRACTION * len(rows):
                keep = active.nonzero().squeeze(1)
                decoder.keep_rows(keep.to(device))
                rows, uniforms_BS, chosen, active = rows[keep], uniforms_BS[keep], chosen[keep], active[keep]
                next_position = next_position[keep.to(device)]
            feed = torch.where(active, chosen, gen.pad_id).to(device)
            logits_BV = decoder.forward(feed[:, None], next_position[:, None], width + step)
            next_position = next_position + 1
        completions = [
            done[row] or self._completion(index, tokens[row], logprobs[row], int(lengths[row]), bool(stopped[row]), stop_hit[row])
            for row, (index, _) in enumerate(jobs)
        ]
        if on_finished is not None:
            on_finished([(offset + row, completions[row]) for row in range(batch) if done[row] is None])
        return completions

    def _stops(self, checkable, chosen, rows, tokens, step, candidates, stops, max_stop_chars, stop_hit):
        """Rows whose completion now contains a stop string (the generic path's exact text check)."""
        ended = torch.zeros_like(checkable)
        for index in (checkable & candidates[chosen]).nonzero().squeeze(1).tolist():
            row = int(rows[index])
            hit = self.generator._matched_stop(tokens[row, : step + 1].tolist(), stops, max_stop_chars)
            if hit is not None:
                stop_hit[row], ended[index] = hit, True
        return ended

    def _completion(
        self, index: int, tokens_S: torch.Tensor, logprobs_S: torch.Tensor, length: int, stopped: bool, stop_hit: str | None
    ) -> Completion:
        ids = tokens_S[:length].tolist()
        return Completion(
            prompt_index=index,
            token_ids=ids,
            logprobs=logprobs_S[:length].tolist(),
            text=self.generator.tokenizer.decode(ids, skip_special_tokens=True),
            finish_reason="stop" if stopped else "length",
            stop_string=stop_hit,
        )
