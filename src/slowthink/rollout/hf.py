"""``HFGenerator``: batched sampling from a transformers causal LM on CPU (or one GPU).

Our own decoding loop over the model's KV cache, so that every completion comes back
with its token ids, the sampling log-probs and a finish reason, and stop strings are
honoured with the stop string kept in the text. Sequences are left-padded; position
ids follow the attention mask so padding never shifts a prompt.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from slowthink.rollout.generator import Completion, SamplingParams


def sample_next_token(
    logits_B: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; return (tokens (B,), log-probs (B,) under softmax(logits / T)).

    ``temperature == 0`` is greedy (log-probs at T = 1). Top-p keeps the smallest set of
    tokens whose probability reaches ``top_p``; the returned log-prob is of the tempered
    distribution before truncation (the trainer recomputes its own).
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
    tokens = torch.multinomial(probs_BV, 1, generator=rng).squeeze(-1)
    return tokens, logprobs_BV.gather(-1, tokens[:, None]).squeeze(-1)


class HFGenerator:
    """The CPU ``Generator``: shares the trainer's model object, so ``update_weights`` is free."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_ids = self._eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
        ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        return ids

    def update_weights(self, model: Any) -> None:
        """Colocated on CPU the generator holds the trainer's own module; otherwise copy weights."""
        if model is not self.model:
            self.model.load_state_dict(model.state_dict())

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        jobs = [(index, list(ids)) for index, ids in enumerate(prompt_ids) for _ in range(params.n)]
        rng = None
        if params.seed is not None:
            rng = torch.Generator(device=self._device).manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            completions: list[Completion] = []
            for start in range(0, len(jobs), self.batch_size):
                completions.extend(self._generate_batch(jobs[start : start + self.batch_size], params, rng))
            return completions
        finally:
            self.model.train(was_training)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _generate_batch(self, jobs: list[tuple[int, list[int]]], params: SamplingParams, rng) -> list[Completion]:
        device, batch = self._device, len(jobs)
        width = max(len(ids) for _, ids in jobs)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        attention_mask = torch.zeros((batch, width), dtype=torch.long, device=device)
        for row, (_, ids) in enumerate(jobs):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
        past, logits_B = out.past_key_values, out.logits[:, -1]
        next_position = position_ids[:, -1:] + 1

        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        finish: list[str | None] = [None] * batch
        stop_hit: list[str | None] = [None] * batch
        max_stop_chars = max((len(s) for s in params.stop), default=0)
        for step in range(params.max_new_tokens):
            chosen, chosen_logprobs = sample_next_token(logits_B, params.temperature, params.top_p, rng)
            for row in range(batch):
                if finish[row] is not None:
                    continue
                token = int(chosen[row])
                tokens[row].append(token)
                logprobs[row].append(float(chosen_logprobs[row]))
                if token in self.eos_ids:
                    finish[row] = "stop"
                elif params.stop:
                    stop_hit[row] = self._matched_stop(tokens[row], params.stop, max_stop_chars)
                    finish[row] = "stop" if stop_hit[row] else None
            if all(f is not None for f in finish) or step == params.max_new_tokens - 1:
                break
            # Finished rows keep decoding padding; their extra tokens are never recorded.
            chosen = torch.where(torch.tensor([f is None for f in finish], device=device), chosen, self.pad_id)
            attention_mask = torch.cat([attention_mask, torch.ones((batch, 1), dtype=torch.long, device=device)], dim=1)
            out = self.model(
                input_ids=chosen[:, None], attention_mask=attention_mask, position_ids=next_position,
                past_key_values=past, use_cache=True,
            )
            past, logits_B = out.past_key_values, out.logits[:, -1]
            next_position = next_position + 1
        return [
            Completion(
                prompt_index=index,
                token_ids=tokens[row],
                logprobs=logprobs[row],
                text=self.tokenizer.decode(tokens[row], skip_special_tokens=True),
                finish_reason=finish[row] or "length",
                stop_string=stop_hit[row],
            )
            for row, (index, _) in enumerate(jobs)
        ]

    def _matched_stop(self, token_ids: list[int], stops: tuple[str, ...], max_stop_chars: int) -> str | None:
        # Decode only a tail long enough to contain any stop string (a token is >= 1 char).
        tail = self.tokenizer.decode(token_ids[-max_stop_chars - 1 :], skip_special_tokens=True)
        return next((s for s in stops if s in tail), None)
