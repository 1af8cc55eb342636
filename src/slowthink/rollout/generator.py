"""The ``Generator`` protocol: every rollout engine (HF on CPU, vLLM, OpenAI HTTP) implements it.

Prompts and completions are token ids, so that RL keeps exactly the ids that were sampled
(re-tokenizing joined text drifts) and the tool loop can splice tool-output tokens in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature=0`` means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    # Generation stops after the first of these strings appears in the completion text;
    # the stop string is kept in the text (the tool loop needs to see the fence).
    stop: tuple[str, ...] = ()
    # Completions per prompt; results are prompt-major (all n of prompt 0, then prompt 1...).
    n: int = 1
    seed: int | None = None
    # One seed per completion (prompt-major, len(prompts) * n), or None. When given, an
    # engine that supports it (HFGenerator, VLLMGenerator; OpenAIGenerator per prompt) draws each completion
    # from its own random stream, so a completion does not depend on what else is in the
    # batch: eval's resume draws what an uninterrupted run draws. Others use ``seed``.
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not stop for stop in self.stop):
            raise ValueError("stop strings must be non-empty (an empty one would end every completion at once)")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


@dataclass
class Completion:
    """One sampled continuation of one prompt.

    ``token_ids``, ``logprobs`` and ``loss_mask`` have one entry per generated token.
    ``logprobs[t]`` is log softmax(logits / T)[token] under the engine that sampled it
    (T = 1 for greedy), before top-p truncation: the behaviour policy's view, kept for
    diagnostics; the trainer recomputes ``old_logprobs`` itself. Tool-output tokens
    carry logprob 0.0 and loss mask 0.
    """

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: FinishReason
    loss_mask: list[int] = field(default_factory=list)
    # The stop string that ended generation, if any.
    stop_string: str | None = None
    # Per tool call: {"status": ..., "code": ..., "output": ...} (tool loop only).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.loss_mask:
            self.loss_mask = [1] * len(self.token_ids)

    @property
    def finished(self) -> bool:
        """Ended on its own (EOS or stop string) rather than at the length limit."""
        return self.finish_reason == "stop"

    @property
    def num_model_tokens(self) -> int:
        return sum(self.loss_mask)


# Called by an engine that streams (``streams_finished = True``, e.g. ``HFGenerator``) with
# completions as they finish: (position in the returned list, completion). Every completion
# is handed over exactly once, before ``generate`` returns; the RL loop rewards them while
# the engine decodes the rest.
OnFinished = Callable[[list[tuple[int, "Completion"]]], None]


@runtime_checkable
class Generator(Protocol):
    """A rollout engine. An engine that subclasses it inherits the defaults of
    ``streams_finished`` and ``weights_model``; the RL recipe reads both."""

    # Whether ``generate`` takes ``on_finished`` and hands each completion over as it
    # finishes (``HFGenerator``), so the RL loop rewards them while the rest decode.
    streams_finished: bool = False

    @property
    def weights_model(self) -> Any:
        """What holds the weights the engine samples from, for the trainer to sync and checkpoint:
        the HF engine's module, vLLM's CPU copy when rollouts may be stale; None when the engine
        holds nothing the trainer must keep (vLLM on-policy, a remote server)."""
        return None

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """Sample ``params.n`` completions for each prompt; prompt-major order."""
        ...

    def update_weights(self, model: Any) -> None:
        """Load the trainer's current weights (a ``torch.nn.Module``) into the engine."""
        ...

    def close(self) -> None:
        """Release what the engine holds (worker processes, connections, an engine's memory); idempotent."""
        ...
