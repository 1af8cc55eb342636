"""The two ways of getting tool-using demonstrations from a teacher (paper section 4.4).

- ``instruct_responses``: prompt the teacher to solve with code (the "tool" prompt
  template) and generate through the tool loop, so its code runs and it reads the output.
  What the paper did with DeepSeek-R1.
- ``inject_responses``: for a teacher that ignores that instruction (the paper's
  DeepSeek-R1-Distill-Qwen-32B), take its plain long thought, cut it at a reasoning word,
  inject a prefix and an opened python fence, let it write the code (T = 1.0), run the
  code, append the output block, and let it continue through the tool loop (T = 0.6,
  top-p 0.95); repeat on the continuation, ``min_injections`` to ``max_injections`` times
  (default 1-3; docs/design.md, "Tool-integrated reasoning", says 0 to 3, with zero left
  out by default because a response without code is always dropped).

Both return ``Candidate`` responses for ``tir.filter.drop_reason`` to judge. Both take a
``ToolLoop``: its ``generator`` is the raw teacher, its ``sandbox`` runs the code, and its
format (default or still3) writes the output blocks, so demonstrations look exactly like
what the tool loop shows the model at evaluation and RL time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from slowthink.config import StrictConfig
from slowthink.data.tool_spans import call_spans, encode_pieces
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.tool_loop import ToolLoop, format_output, output_block
from slowthink.tir.inject import CLOSING_FENCE, INJECTION_PREFIXES, THOUGHT_END, close_code, cut_index, splice, split_thought


class TIRSampling(StrictConfig):
    """How the teacher is sampled (section 4.4's settings as defaults); distill-tir's ``sampling`` section."""

    n: int = Field(1, ge=1)
    """Responses per problem and path."""
    temperature: float = Field(0.6, ge=0)
    """Temperature of the thought, the instructed response and every continuation (paper: 0.6)."""
    top_p: float = Field(0.95, gt=0, le=1)
    """Top-p of the thought, the instructed response and every continuation (paper: 0.95)."""
    max_tokens: int = Field(16384, ge=1)
    """Tokens per response (model + tool output), cut to the teacher's context."""
    code_temperature: float = Field(1.0, ge=0)
    """Temperature at which injected code is written (paper: 1.0)."""
    code_max_tokens: int = Field(1024, ge=1)
    """Tokens for one injected code block."""
    min_injections: int = Field(1, ge=0)
    """Fewest code injections per inject-path response (drawn uniformly from [min, max])."""
    max_injections: int = 3
    """Most code injections per inject-path response (paper: up to 3)."""

    @model_validator(mode="after")
    def _check(self) -> TIRSampling:
        if not 0 <= self.min_injections <= self.max_injections:
            raise ValueError(f"need 0 <= min_injections <= max_injections, got {self.min_injections} and {self.max_injections}")
        return self


@dataclass
class Candidate:
    """One teacher response on its way to the filter."""

    prompt_index: int
    source: str  # "instruct" or "inject"
    text: str = ""
    # The tool loop's records ({"status", "code", "output", "wall_s"}, and "span": the
    # [start, end) characters of ``text`` the interpreter wrote, for a cell that ran);
    # injected cells add "injected": True.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # Ended on its own (EOS) rather than at the token limit.
    finished: bool = False
    injections: int = 0
    # Why the inject path gave up on it before the filter (no_split_point, code_unfinished,
    # too_long, truncated); None while it is still a candidate.
    failed: str | None = None
    # Characters fixed by earlier injections (no later cut goes before this).
    protected: int = 0
    injections_left: int = 0


def instruct_responses(prompts: Sequence[list[int]], loop: ToolLoop, sampling: TIRSampling, budget: int, seed: int) -> list[Candidate]:
    """``sampling.n`` responses per prompt, generated with code execution (prompt-major)."""
    params = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, max_new_tokens=budget, n=sampling.n, seed=seed)
    return [Candidate(c.prompt_index, "instruct", c.text, list(c.tool_calls), c.finish_reason == "stop") for c in loop.generate(prompts, params)]


def inject_responses(
    prompts: Sequence[list[int]], rngs: Sequence[random.Random], loop: ToolLoop, sampling: TIRSampling, budget: int, seed: int
) -> list[Candidate]:
    """``sampling.n`` plain thoughts per prompt, each with code injected 1-3 times.

    ``rngs[i]`` draws the injection count, cut points and prefixes of prompt ``i``'s
    responses (seeded per problem by the caller, so a rerun makes the same choices)."""
    plain = loop.generator.generate(
        prompts, SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, max_new_tokens=budget, n=sampling.n, seed=seed)
    )
    drafts = [Candidate(c.prompt_index, "inject", c.text, [], c.finish_reason == "stop") for c in plain]
    for draft in drafts:
        draft.injections_left = rngs[draft.prompt_index].randint(sampling.min_injections, sampling.max_injections)
    for round_index in itertools.count(1):
        active = [d for d in drafts if d.injections_left > 0 and d.failed is None]
        # Cut each thought and splice the prefix in; a thought with no split point left stops here.
        active = [d for d in active if _cut(d, rngs[d.prompt_index])]
        if not active:
            break
        _write_and_run_code(active, prompts, loop, sampling, budget, seed + 2 * round_index)
        _continue(active, prompts, loop, sampling, budget, seed + 2 * round_index + 1)
    return drafts


def _cut(draft: Candidate, rng: random.Random) -> bool:
    """Replace the thought after a random cut by an injection prefix and an opened fence."""
    pieces = split_thought(draft.text, draft.protected)
    cut = cut_index(len(pieces), rng)
    if cut is None:
        # No injection at all: the response cannot become a demonstration.
        draft.failed = "no_split_point" if draft.injections == 0 else None
        draft.injections_left = 0
        return False
    kept = sum(len(piece) for piece in pieces[:cut])
    draft.text = splice(pieces, cut, rng.choice(INJECTION_PREFIXES))
    # A cell the teacher ran after </think> goes with the text it sat in (its span would
    # point past the new text).
    draft.tool_calls = [call for call in draft.tool_calls if call.get("span") is None or call["span"][1] <= kept]
    draft.injections_left -= 1
    return True


def _write_and_run_code(drafts: list[Candidate], prompts: Sequence[list[int]], loop: ToolLoop, sampling: TIRSampling, budget: int, seed: int) -> None:
    """The teacher writes the code up to the closing fence (T = 1.0); the sandbox runs it
    and its output block, in the loop's format, is appended."""
    triples = [(d, ids, budget - len(ids)) for d in drafts for ids in [encode_draft(loop.tokenizer, d)]]
    for draft, _, left in triples:
        if left < 1:
            draft.failed = "too_long"
    triples = [t for t in triples if t[0].failed is None]
    if not triples:
        return
    params = SamplingParams(
        temperature=sampling.code_temperature,
        top_p=1.0,
        stop=(CLOSING_FENCE,),
        seed=seed,
        max_new_tokens=min(sampling.code_max_tokens, max(left for _, _, left in triples)),
    )
    generated = loop.generator.generate([prompts[d.prompt_index] + ids for d, ids, _ in triples], params)
    for (draft, _, left), completion in zip(triples, generated):
        # Code past the response's own budget is as unfinished as code without a closing fence.
        code = close_code(completion.text) if len(completion.token_ids) <= left else None
        if code is None:
            draft.failed = "code_unfinished"
            continue
        code = code if code.endswith("\n") else code + "\n"
        draft.text += code + CLOSING_FENCE
        assert loop.sandbox is not None, "the inject path runs code: the tool loop needs a sandbox"
        result = loop.sandbox.run(code)
        body = format_output(result, loop.fmt)
        start = len(draft.text)
        draft.text += output_block(body, False, draft.text, loop.fmt)
        span = [start, len(draft.text)]
        draft.tool_calls.append({"status": result.status, "code": code, "output": body, "wall_s": result.wall_s, "injected": True, "span": span})
        draft.injections += 1


def _continue(drafts: list[Candidate], prompts: Sequence[list[int]], loop: ToolLoop, sampling: TIRSampling, budget: int, seed: int) -> None:
    """Let the teacher go on after the output (T = 0.6, top-p 0.95), running any code it
    writes itself; a response over its token budget is dropped as truncated."""
    going = [d for d in drafts if d.failed is None]
    encoded = [encode_draft(loop.tokenizer, d) for d in going]
    room = [budget - len(ids) for ids in encoded]
    for draft, left in zip(going, room):
        if left < 1:
            draft.failed = "too_long"
    pairs = [(d, ids, left) for d, ids, left in zip(going, encoded, room) if d.failed is None]
    if not pairs:
        return
    params = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=seed, n=1, max_new_tokens=max(left for _, _, left in pairs))
    completions = loop.generate([prompts[d.prompt_index] + ids for d, ids, _ in pairs], params)
    for (draft, _, left), completion in zip(pairs, completions):
        if len(completion.token_ids) > left:
            draft.failed = "truncated"
            continue
        # The continuation's spans count from its own start: shift them into the whole text.
        base = len(draft.text)
        draft.text += completion.text
        draft.tool_calls += [shift_span(call, base) for call in completion.tool_calls]
        draft.finished = completion.finish_reason == "stop"
        # Later cuts go after the last fence: no code or output block is ever cut through.
        draft.protected = protected_end(draft.text)


def encode_draft(tokenizer: Any, draft: Candidate) -> list[int]:
    """The teacher's context so far: its own text as usual, the interpreter's as untrusted
    text (a printed end-of-text string must not end the teacher's turn)."""
    return encode_pieces(tokenizer, draft.text, call_spans(draft.tool_calls))


def shift_span(call: dict[str, Any], offset: int) -> dict[str, Any]:
    """A call record whose span is moved ``offset`` characters on."""
    if call.get("span") is None:
        return call
    return {**call, "span": [call["span"][0] + offset, call["span"][1] + offset]}


def protected_end(text: str) -> int:
    """The offset after the line of the last code fence (opening or closing) in the thought;
    later injections cut only after it. 0 when the thought has no fence."""
    end = text.find(THOUGHT_END)
    fence = text.rfind("```", 0, len(text) if end < 0 else end)
    if fence < 0:
        return 0
    line_end = text.find("\n", fence)
    return len(text) if line_end < 0 else line_end + 1
