"""Tool-integrated generation: stop at a closed code block, run it, splice its output in.

Paper section 4.4 (STILL-3-TOOL) and docs/design.md, "Tool-integrated reasoning". Over any
``Generator``: sample with the format's stop strings; when a segment ends on one of them
and the response's last block is a closed, not yet executed ```` ```python ```` block,
run it in the ``Sandbox``, append the output block, and continue from prompt + every
token so far. The sampled token ids are kept as they were; the tool output is tokenized
on its own and carries loss mask 0 and logprob 0.0, so loss denominators count model
tokens only (re-tokenizing the joined text would drift). It is untrusted: special-token
strings a cell prints stay text, never control tokens (data/tool_spans.py). Each executed
call records the characters the interpreter wrote (``span``), which ``distill-tir`` keeps
so that SFT masks exactly them.

Either output fence, ```` ```output ```` (what the ``tool`` prompt asks for) or
```` ```Output ```` (the paper's release), hands a code block over to the interpreter in
either preset; the preset decides only the fence the loop writes itself. A response whose
token budget runs out on a stop string finishes as ``length``, its last block recorded as
``not_executed``: it was cut, not finished.

The ``still3`` preset reproduces the paper's release: an ```` ```Output ```` fence,
stateless cells with a 5 s timeout (``still3_sandbox_config``), output cut to
200 + "..." + 200 characters, only the last traceback line on error; as in every
mode, a cell that prints nothing shows its last expression (the sandbox does that).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from pydantic import Field

from slowthink.config import StrictConfig
from slowthink.data.tool_spans import OUTPUT_FENCES, encode_untrusted
from slowthink.rollout.fast_sampling import row_keys
from slowthink.rollout.generator import Completion, FinishReason, Generator, SamplingParams
from slowthink.sandbox.base import CellResult, Sandbox
from slowthink.sandbox.config import SandboxConfig


class TextTokenizer(Protocol):
    """What the loop needs from a tokenizer (HF tokenizers fit)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ToolFormat:
    """How code and its output are written in a response."""

    name: str
    code_fence: str = "```python"
    # The fence the loop writes when the model did not write one.
    output_fence: str = "```output"
    # Stop strings, kept in the text: the model opening an output block itself (with
    # either fence), or a code block closed by a blank line.
    stop: tuple[str, ...] = (*OUTPUT_FENCES, "```\n\n")
    # "full": stdout plus the traceback or a status line; "last_line": stdout when the
    # cell succeeded, else only the last traceback line (the paper's release).
    errors: Literal["full", "last_line"] = "full"
    # Output longer than head + tail characters keeps head + "..." + tail (None: keep all;
    # the sandbox's own max_output_chars still applies).
    head_chars: int | None = None
    tail_chars: int | None = None


DEFAULT_FORMAT = ToolFormat("default")
STILL3_FORMAT = ToolFormat("still3", output_fence="```Output", errors="last_line", head_chars=200, tail_chars=200)
PRESETS = {"default": DEFAULT_FORMAT, "still3": STILL3_FORMAT}

# What the model reads when a cell did not finish normally (one line, like a traceback's last).
STATUS_LINES = {
    "timeout": "TimeoutError: the code ran past its time limit",
    "memory": "MemoryError: the code ran out of memory",
    "output_limit": "OutputLimitError: the code printed too much output",
    "crashed": "RuntimeError: the code crashed the interpreter",
}


def still3_sandbox_config(**overrides: Any) -> SandboxConfig:
    """The paper's release: stateless cells, 5 s timeout."""
    return SandboxConfig(**{"mode": "stateless", "timeout_s": 5.0, **overrides})


def sandbox_config_for(preset: str, **overrides: Any) -> SandboxConfig:
    """The sandbox settings a preset expects (still3: the release's; default: ours)."""
    return still3_sandbox_config(**overrides) if preset == "still3" else SandboxConfig(**overrides)


class ToolLoopConfig(StrictConfig):
    """Budgets and switches of the tool loop (``rollout.tools`` / ``eval --tools``)."""

    preset: Literal["default", "still3"] = "default"
    """Output format: "default" or "still3" (the paper's release)."""
    max_tool_calls: int | None = Field(None, ge=0)
    """Tool calls executed per response; later code blocks are left unexecuted and
    generation simply continues. None: no limit (the paper's evaluation has none)."""
    max_total_tokens: int | None = Field(None, ge=1)
    """Model + tool tokens per response; None: SamplingParams.max_new_tokens."""
    execute: bool = True
    """False: the paper's ablation "code written but not executed": the loop stops at
    code blocks as usual but runs nothing and appends no output block."""


def format_output(result: CellResult, fmt: ToolFormat) -> str:
    """The text shown to the model inside the output block (without the fences)."""
    if fmt.errors == "last_line" and result.status != "ok":
        text = result.error if result.status == "error" and result.error else STATUS_LINES.get(result.status, "")
    else:
        text = result.stdout
        if result.status == "error":
            text += result.stderr
        elif result.status != "ok":
            text += STATUS_LINES[result.status]
    text = text.rstrip("\n")
    if fmt.head_chars is not None and fmt.tail_chars is not None and len(text) > fmt.head_chars + fmt.tail_chars:
        text = text[: fmt.head_chars] + "..." + text[len(text) - fmt.tail_chars :]
    return text


def pending_code(text: str, fmt: ToolFormat, handled_upto: int) -> tuple[str, bool] | None:
    """The last code block of ``text`` if it is closed, starts at or after ``handled_upto``
    (not yet executed), and nothing but whitespace or an output fence follows it.

    Returns (code, whether the model already wrote the output fence)."""
    start = text.rfind(fmt.code_fence)
    if start < handled_upto or start < 0:
        return None
    line_end = text.find("\n", start)
    if line_end < 0 or text[start + len(fmt.code_fence) : line_end].strip():
        return None  # "```python3 x" or a fence with no body yet
    close = text.find("```", line_end + 1)
    if close < 0:
        return None
    tail = text[close + 3 :].strip()
    if tail and tail not in OUTPUT_FENCES:
        return None
    return text[line_end + 1 : close], bool(tail)


def output_block(body: str, fence_written: bool, text_so_far: str, fmt: ToolFormat) -> str:
    """The text appended after a code block: the output fence (unless the model wrote
    it already), the output, and the closing fence."""
    lead = "" if text_so_far.endswith("\n") else "\n"
    opening = lead if fence_written else f"{lead}{fmt.output_fence}\n"
    return f"{opening}{body}\n```\n"


def round_seed(seed: int, round_index: int) -> int:
    """The seed of a continuation round: hash(hash(seed) + round), the counter-based hash
    that gives the HF generator's rows their streams (``fast_sampling.row_keys``). Not
    ``seed + round``: RL's rank seeds are consecutive within a step, and rank 0's first
    continuation would then sample with rank 1's rollout seed."""
    return int(row_keys(round_index + 1, seed, None)[round_index])


@dataclass
class _Response:
    """One response being built: its pieces and where it stands."""

    prompt_index: int
    prompt_ids: list[int]
    budget: int
    session: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: FinishReason = "stop"
    stop_string: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    handled_upto: int = 0
    done: bool = False

    @property
    def remaining(self) -> int:
        return self.budget - len(self.token_ids)

    def add(self, ids: list[int], logprobs: list[float], mask: int, text: str) -> None:
        self.token_ids += ids
        self.logprobs += logprobs
        self.loss_mask += [mask] * len(ids)
        self.text += text

    def completion(self) -> Completion:
        return Completion(
            self.prompt_index,
            self.token_ids,
            self.logprobs,
            self.text,
            self.finish_reason,
            loss_mask=self.loss_mask,
            stop_string=self.stop_string,
            tool_calls=self.tool_calls,
        )


class ToolLoop(Generator):
    """Generation with code execution. It is itself a ``Generator``, so evaluation and RL
    take it wherever they take the engine it wraps."""

    def __init__(self, generator: Generator, sandbox: Sandbox | None, tokenizer: TextTokenizer, config: ToolLoopConfig | None = None) -> None:
        self.generator, self.sandbox, self.tokenizer = generator, sandbox, tokenizer
        self.config = config or ToolLoopConfig()
        self.fmt = PRESETS[self.config.preset]
        if self.config.execute and sandbox is None:
            raise ValueError("the tool loop needs a Sandbox to execute code (or ToolLoopConfig(execute=False))")

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """Like ``Generator.generate`` (prompt-major, ``params.n`` per prompt), with tools."""
        budget = self.config.max_total_tokens or params.max_new_tokens
        stops = tuple(dict.fromkeys((*params.stop, *self.fmt.stop)))
        first = self.generator.generate(prompt_ids, replace(params, stop=stops, max_new_tokens=budget))
        batch = uuid.uuid4().hex[:8]
        responses = [_Response(c.prompt_index, list(prompt_ids[c.prompt_index]), budget, f"{batch}-{i}") for i, c in enumerate(first)]
        segments: list[Completion] = first
        active = responses
        position = {id(r): i for i, r in enumerate(responses)}  # a response's completion index
        for round_index in itertools.count(1):
            for response, segment in zip(active, segments):
                self._absorb(response, segment, params.stop)
            active = [r for r in responses if not r.done]
            if not active:
                break
            # One batched call for every response that goes on; each is clipped to its own budget.
            seed = None if params.seed is None else round_seed(params.seed, round_index)
            # Per-completion seeds (eval) follow each response into its later rounds.
            seeds = None if params.seeds is None else tuple(round_seed(params.seeds[position[id(r)]], round_index) for r in active)
            call = replace(params, n=1, stop=stops, seed=seed, seeds=seeds, max_new_tokens=max(r.remaining for r in active))
            segments = self.generator.generate([r.prompt_ids + r.token_ids for r in active], call)
        for response in responses:
            if self.sandbox is not None:
                self.sandbox.close_session(response.session)
        return [r.completion() for r in responses]

    @property
    def weights_model(self) -> Any:
        return self.generator.weights_model  # the wrapped engine's (the loop itself holds none)

    def update_weights(self, model: Any) -> None:
        self.generator.update_weights(model)

    def close(self) -> None:
        """Stop the sandbox's worker and close the wrapped engine (both idempotent)."""
        if self.sandbox is not None:
            self.sandbox.close()
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()

    def _absorb(self, response: _Response, segment: Completion, user_stops: tuple[str, ...]) -> None:
        """Add one model segment; then finish, or run its code and mark it to go on."""
        ids, logprobs, text = segment.token_ids, segment.logprobs, segment.text
        finish, stop = segment.finish_reason, segment.stop_string
        if len(ids) > response.remaining:
            ids, logprobs = ids[: response.remaining], logprobs[: response.remaining]
            text, finish, stop = self.tokenizer.decode(ids), "length", None
        response.add(ids, logprobs, 1, text)
        response.finish_reason, response.stop_string = finish, stop
        # Ends here: length, EOS, a caller's own stop string or an empty segment.
        if finish == "length" or stop is None or stop in user_stops or not ids:
            response.done = True
            return
        pending = pending_code(response.text, self.fmt, response.handled_upto)
        if response.remaining <= 0:
            # Stopped for the interpreter with no token left: cut by the budget, not finished,
            # and a block it closed never ran.
            response.done, response.finish_reason, response.stop_string = True, "length", None
            if pending is not None:
                response.tool_calls.append({"status": "not_executed", "code": pending[0], "output": "", "wall_s": 0.0})
            return
        if pending is None:
            return  # a fence that is not a runnable block: keep generating
        code, fence_written = pending
        response.handled_upto = len(response.text)
        executed = sum(1 for call in response.tool_calls if call["status"] != "not_executed")
        limit = self.config.max_tool_calls
        if not self.config.execute or (limit is not None and executed >= limit):
            response.tool_calls.append({"status": "not_executed", "code": code, "output": "", "wall_s": 0.0})
            return
        self._run_tool(response, code, fence_written)

    def _run_tool(self, response: _Response, code: str, fence_written: bool) -> None:
        """Execute ``code`` and splice the output block in as mask-0 tokens, encoded as
        untrusted text; the call records the characters it added (``span``)."""
        assert self.sandbox is not None
        result = self.sandbox.run(code, session=response.session)
        body = format_output(result, self.fmt)
        block = output_block(body, fence_written, response.text, self.fmt)
        ids = encode_untrusted(self.tokenizer, block)
        if len(ids) >= response.remaining:
            # No room to continue after the output: keep what fits and stop at the budget.
            ids = ids[: response.remaining]
            block = self.tokenizer.decode(ids)
            response.done, response.finish_reason, response.stop_string = True, "length", None
        start = len(response.text)
        response.add(ids, [0.0] * len(ids), 0, block)
        span = [start, len(response.text)]
        response.tool_calls.append({"status": result.status, "code": code, "output": body, "wall_s": result.wall_s, "span": span})
        response.handled_upto = len(response.text)
