"""Long-CoT cold-start data (paper section 4.1): which distilled traces to keep, and how a
trace longer than the training window is handled.

The paper fine-tunes on long chains of thought distilled from a stronger reasoner, kept
only when the answer is right and the response of a usable length. Two rules here:

- **trace filter**: a response is kept when its token count is within
  [``min_tokens``, ``max_tokens``] and, when the row carries a gold ``answer``, the checker
  accepts the response's final answer (a wrong trace teaches the wrong conclusion);
- **max length**: an example longer than ``max_length`` tokens (prompt + response) is
  never cut silently, because a cut-off trace trained as is teaches a half-written final
  answer. ``drop`` removes it; ``mask`` keeps the part that fits but zeroes the loss from
  the start of the answer (the ``</think>`` that closes the thought, else the last
  ``\\boxed``/``<answer>``) onwards, so only complete reasoning tokens are trained, and no
  end-of-sequence. Both are counted in the run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slowthink.data.sft import SFTExample, encode_response
from slowthink.data.tool_spans import Span

Truncation = Literal["drop", "mask"]
_ANSWER_MARKERS = ("</think>",)
_FINAL_MARKERS = ("\\boxed", "<answer>")


@dataclass
class DataStats:
    """Counts of the cold-start data preparation, logged with the first step's metrics."""

    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # too_short, too_long, incorrect, truncated
    truncated_masked: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def metrics(self) -> dict[str, float]:
        out = {"data/rows": float(self.rows), "data/kept": float(self.kept), "data/truncated_masked": float(self.truncated_masked)}
        out.update({f"data/dropped_{k}": float(v) for k, v in sorted(self.dropped.items())})
        return out


def answer_char_index(response: str) -> int | None:
    """Where the answer part of a response starts: ``</think>``, else the last box/answer tag."""
    for marker in _ANSWER_MARKERS:
        if (index := response.find(marker)) >= 0:
            return index
    found = [response.rfind(marker) for marker in _FINAL_MARKERS]
    best = max(found)
    return best if best >= 0 else None


def answer_token_index(tokenizer: Any, response: str, tool_spans: list[Span] | None = None) -> int | None:
    """Index of the first response token at or after the answer's start (None: no answer),
    in the response's ids as ``encode_sft_example`` makes them (tool spans apart)."""
    start = answer_char_index(response)
    if start is None:
        return None
    _, _, ends = encode_response(tokenizer, response, tool_spans, with_ends=True)
    return next((i for i, end in enumerate(ends) if end > start), len(ends))


def fit_to_length(example: SFTExample, max_length: int, policy: Truncation, answer_token: int | None) -> SFTExample | None:
    """``example`` if it fits; else None (drop) or the fitting prefix with the answer masked.

    ``answer_token`` is the response index where the answer starts. Under ``mask`` an
    example whose reasoning alone does not fit before the cut keeps only the reasoning
    tokens that fit; one with no trained token left is dropped.
    """
    n_prompt = len(example.prompt_ids)
    if n_prompt + len(example.response_ids) <= max_length:
        return example
    if policy == "drop" or n_prompt >= max_length:
        return None
    keep = max_length - n_prompt
    stop = keep if answer_token is None else min(keep, answer_token)
    # No answer marker at all: the cut may fall anywhere in what the model would write next;
    # the trained part is what precedes the cut, never an end-of-sequence token.
    mask = [m if i < stop else 0 for i, m in enumerate(example.loss_mask[:keep])]
    if not any(mask):
        return None
    return SFTExample(example.prompt_ids, example.response_ids[:keep], mask)


def trace_rejection(num_tokens: int, min_tokens: int, max_tokens: int | None) -> str | None:
    """ "too_short" / "too_long" when the response length is outside the kept range."""
    if num_tokens < min_tokens:
        return "too_short"
    if max_tokens is not None and num_tokens > max_tokens:
        return "too_long"
    return None


def incorrect_traces(checker: Any, golds: Sequence[str | None], responses: Sequence[str]) -> list[bool]:
    """True for each response whose final answer the checker rejects (rows without a gold pass)."""
    checked = [i for i, gold in enumerate(golds) if gold is not None]
    verdicts = checker.check([golds[i] for i in checked], [responses[i] for i in checked]) if checked else []
    wrong = [False] * len(responses)
    for i, verdict in zip(checked, verdicts):
        wrong[i] = not verdict.correct
    return wrong
