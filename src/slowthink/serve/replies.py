"""The JSON that ``slowthink serve`` answers with: whole replies, and the chunks of a stream.

Must not import the CLI, fastapi, uvicorn or torch (tests/test_layers.py): these are pure
functions of the request, its ``Plan`` and the completions.

Formats are OpenAI's. A reply is ``{"id", "object": "text_completion" | "chat.completion",
"created", "model", "choices", "usage"}``. A stream is server-sent events, each ``data:
{chunk}`` and a blank line, ending with ``data: [DONE]``; a chunk has the object
``text_completion`` (with ``text``) or ``chat.completion.chunk`` (with ``delta``: the
role first, then pieces of ``content``), one choice per chunk, and the last chunk of each
choice carries its ``finish_reason``. With ``stream_options.include_usage`` every chunk has
``"usage": null`` and one more chunk, with no choices, carries the usage.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from slowthink.rollout.generator import Completion
from slowthink.serve.api import ChatRequest, CompletionRequest, Plan, SamplingRequest, ServerState

# (token id, log-prob) alternatives of each generated token, most likely first.
TopLogprobs = list[list[tuple[int, float]]]


def cut_stop(completion: Completion, include: bool) -> str:
    """The completion text ending at its stop string (kept or cut), as OpenAI servers return it."""
    if completion.stop_string is None:
        return completion.text
    at = completion.text.find(completion.stop_string)
    if at < 0:
        return completion.text
    return completion.text[: at + len(completion.stop_string)] if include else completion.text[:at]


def usage(prompts: list[list[int]], completions: list[Completion], samples: int) -> dict[str, int]:
    """Every sample generated counts (best_of's unreturned ones too, as OpenAI bills them)."""
    prompt_tokens = sum(len(p) for p in prompts) * samples
    completion_tokens = sum(len(c.token_ids) for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def best_rows(completions: list[Completion], samples: int, n: int) -> list[int]:
    """Per prompt, the ``n`` of its ``samples`` rows with the highest mean log-prob per token
    (OpenAI's best_of), best first; all rows, in order, without best_of."""
    if samples == n:
        return list(range(len(completions)))

    def score(row: int) -> float:
        logprobs = completions[row].logprobs
        return sum(logprobs) / max(len(logprobs), 1)

    chosen = []
    for start in range(0, len(completions), samples):
        chosen += sorted(range(start, start + samples), key=score, reverse=True)[:n]
    return chosen


def _envelope(state: ServerState, id_prefix: str, kind: str) -> dict[str, Any]:
    return {"id": f"{id_prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": state.model_name}


def _choice(index: int, completion: Completion, body: dict[str, Any], logprobs: Any) -> dict[str, Any]:
    """One choice as OpenAI writes it: index, the text or message, why it ended, log-probs."""
    return {"index": index, **body, "finish_reason": completion.finish_reason, "stop_reason": completion.stop_string, "logprobs": logprobs}


def _completion_logprobs(state: ServerState, request: CompletionRequest, c: Completion, top: TopLogprobs) -> dict[str, Any]:
    """OpenAI's completions log-probs: per token its text, log-prob, offset, and a dict of the
    ``logprobs`` most likely tokens plus the sampled one."""
    as_ids = request.return_tokens_as_token_ids
    tokens = [state.token_text(t, as_ids) for t in c.token_ids]
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += 0 if as_ids else len(token)
    alternatives = []
    for i, (token, lp) in enumerate(zip(tokens, c.logprobs)):
        listed = {state.token_text(t, as_ids): v for t, v in (top[i] if i < len(top) else [])}
        alternatives.append({**listed, token: lp})
    return {"tokens": tokens, "token_logprobs": c.logprobs, "top_logprobs": alternatives, "text_offset": offsets}


def completions_reply(
    state: ServerState, request: CompletionRequest, plan: Plan, completions: list[Completion], tops: dict[int, TopLogprobs]
) -> dict[str, Any]:
    choices = []
    for index, row in enumerate(best_rows(completions, plan.params.n, plan.n)):
        c = completions[row]
        logprobs = None if request.logprobs is None else _completion_logprobs(state, request, c, tops.get(row, []))
        choices.append(_choice(index, c, {"text": cut_stop(c, request.include_stop_str_in_output)}, logprobs))
    return {**_envelope(state, "cmpl", "text_completion"), "choices": choices, "usage": usage(plan.prompts, completions, plan.params.n)}


def _chat_token(state: ServerState, token_id: int, logprob: float, as_ids: bool) -> dict[str, Any]:
    text = state.token_text(token_id, as_ids)
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def chat_reply(state: ServerState, request: ChatRequest, plan: Plan, completions: list[Completion], tops: dict[int, TopLogprobs]) -> dict[str, Any]:
    as_ids = request.return_tokens_as_token_ids
    choices = []
    for row, c in enumerate(completions):
        logprobs = None
        if request.logprobs:
            top = tops.get(row, [])
            content = []
            for i, (t, lp) in enumerate(zip(c.token_ids, c.logprobs)):
                alternatives = [_chat_token(state, a, v, as_ids) for a, v in (top[i] if i < len(top) else [])]
                content.append({**_chat_token(state, t, lp, as_ids), "top_logprobs": alternatives})
            logprobs = {"content": content}
        message = {"role": "assistant", "content": cut_stop(c, request.include_stop_str_in_output)}
        choices.append(_choice(row, c, {"message": message}, logprobs))
    return {**_envelope(state, "chatcmpl", "chat.completion"), "choices": choices, "usage": usage(plan.prompts, completions, plan.params.n)}


class TextStream:
    """One choice's text, handed out in pieces that join to exactly the non-streamed text.

    While the row decodes, the text so far is sent except its last ``hold`` characters (the
    start of a stop string that may yet complete, to be cut) and a trailing U+FFFD (a
    character whose bytes have not all been generated yet). The final piece is what is left
    of the text the non-streamed reply gives (``cut_stop``).
    """

    def __init__(self, decode: Callable[[list[int]], str], stops: tuple[str, ...], include_stop: bool):
        self.decode, self.include_stop = decode, include_stop
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.sent = ""

    def piece(self, token_ids: list[int], completion: Completion | None) -> str:
        if completion is not None:
            final = cut_stop(completion, self.include_stop)
        else:
            text = self.decode(token_ids)
            final = text[: len(text) - self.hold].rstrip("\ufffd")
            if not final.startswith(self.sent):
                return ""
        piece = final[len(self.sent) :]
        self.sent = final
        return piece


class StreamWriter:
    """The server-sent events of one streamed request (``slowthink.serve.app.stream`` feeds it)."""

    def __init__(self, state: ServerState, request: SamplingRequest, plan: Plan, chat: bool):
        self.state, self.plan, self.chat = state, plan, chat
        self.include_usage = request.stream_options is not None and request.stream_options.include_usage
        self.envelope = _envelope(state, "chatcmpl" if chat else "cmpl", "chat.completion.chunk" if chat else "text_completion")
        rows = len(plan.prompts) * plan.params.n
        decode = lambda ids: state.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        self.texts = [TextStream(decode, plan.params.stop, request.include_stop_str_in_output) for _ in range(rows)]
        self.completions: dict[int, Completion] = {}

    def event(self, payload: dict[str, Any]) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    def _chunk(self, row: int, piece: str | None, finish: Completion | None) -> str:
        """One choice's chunk: a piece of text (None: the chat role), maybe its finish reason."""
        if self.chat:
            delta = {"role": "assistant", "content": ""} if piece is None else ({"content": piece} if piece else {})
            choice: dict[str, Any] = {"index": row, "delta": delta}
        else:
            choice = {"index": row, "text": piece or ""}
        choice["logprobs"] = None
        choice["finish_reason"] = None if finish is None else finish.finish_reason
        choice["stop_reason"] = None if finish is None else finish.stop_string
        chunk = {**self.envelope, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return self.event(chunk)

    def opening(self) -> list[str]:
        """Chat streams open with each choice's role (OpenAI's first delta)."""
        return [self._chunk(row, None, None) for row in range(len(self.texts))] if self.chat else []

    def update(self, rows: list[tuple[int, list[int], Completion | None]]) -> list[str]:
        """The events for the scheduler's latest news of these rows (see ``slowthink.serve.scheduler``)."""
        events = []
        for row, token_ids, completion in rows:
            if row in self.completions:
                continue
            piece = self.texts[row].piece(token_ids, completion)
            if completion is not None:
                self.completions[row] = completion
            if piece or completion is not None:
                events.append(self._chunk(row, piece, completion))
        return events

    def closing(self) -> list[str]:
        """The usage chunk (when asked for) and the end of the stream."""
        events = []
        if self.include_usage:
            done = [self.completions[row] for row in sorted(self.completions)]
            events.append(self.event({**self.envelope, "choices": [], "usage": usage(self.plan.prompts, done, self.plan.params.n)}))
        return [*events, "data: [DONE]\n\n"]

    def error(self, message: str) -> str:
        """A failure after the stream began (the status line is sent): the OpenAI SDK raises it."""
        return self.event({"error": {"message": message, "type": "InternalServerError", "code": 500}})
