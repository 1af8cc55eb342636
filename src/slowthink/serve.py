"""``slowthink serve``: an OpenAI-compatible HTTP server over the CPU ``HFGenerator``.

Must not import the CLI; the one module that imports uvicorn (tests/test_layers.py).

Endpoints: ``GET /v1/models``, ``POST /v1/completions`` (prompt as a string, a list of
token ids, or a list of either) and ``POST /v1/chat/completions`` (the tokenizer's chat
template). It exists so that the OpenAI backend is tested against a real server, and so a
small checkpoint can be served without vLLM.

Semantics follow vLLM where OpenAI leaves room: ``temperature=0`` is greedy; the stop
string is cut from the text unless ``include_stop_str_in_output``; ``logprobs`` reports the
sampled token only (its log-prob under the sampling temperature, before top-p), and
``return_tokens_as_token_ids`` spells tokens as ``"token_id:N"``. A request that would run
past the model's context is refused with 400, as vLLM does; without ``max_tokens`` a chat
request gets the context that remains (capped by ``--max-tokens-limit``).

One scheduler thread runs the model (``serve_scheduler``): requests take turns a few
tokens at a time, so a small request is never stuck behind a big one; a request whose
client hangs up is cancelled; each request samples from its own generator state, so a
seeded request gives the same output alone or among others. Per request, prompts x n and
``max_tokens`` are capped (400 naming the limit). Every malformed request is a 400 that
names the field (NaN, out-of-range seeds, empty messages, lone surrogates), never a 500.
``GET /stats`` reports the scheduler's counters.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from slowthink.config import StrictConfig
from slowthink.rollout.generator import Completion, SamplingParams


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); the message says which field and why."""


def _utf8(text: str) -> str:
    """JSON may carry a lone surrogate (``"\\udcff"``); no tokenizer can encode one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a lone surrogate {text[exc.start]!r} at character {exc.start}; send valid UTF-8 text") from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]
# OpenAI's seed is a 64-bit signed integer.
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class _Request(BaseModel):
    # Unknown OpenAI fields (user, frequency_penalty=0, ...) are accepted and ignored;
    # the ones that would change the result are checked in ``_sampling``.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str | None = None
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=128)
    stop: Text | list[Text] | None = None
    seed: Seed | None = None
    stream: bool = False
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


class CompletionRequest(_Request):
    prompt: Text | list[int] | list[Text] | list[list[int]]
    # The OpenAI completions default.
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0)
    echo: bool = False


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0)


def _stop_tuple(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)


def _sampling(request: _Request, max_tokens: int) -> SamplingParams:
    """Map a request onto ``SamplingParams``; unsupported settings are refused, not ignored."""
    if request.stream:
        raise RequestError("'stream': streaming is not supported by slowthink serve")
    if request.presence_penalty or request.frequency_penalty:
        raise RequestError("'presence_penalty'/'frequency_penalty' are not supported (use 0)")
    if getattr(request, "echo", False):
        raise RequestError("'echo' is not supported")
    try:
        return SamplingParams(
            temperature=request.temperature,
            top_p=request.top_p,
            max_new_tokens=max_tokens,
            stop=_stop_tuple(request.stop),
            n=request.n,
            seed=request.seed,
        )
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _cut_stop(completion: Completion, include: bool) -> str:
    """The completion text ending at its stop string (kept or cut), as OpenAI servers return it."""
    if completion.stop_string is None:
        return completion.text
    at = completion.text.find(completion.stop_string)
    if at < 0:
        return completion.text
    return completion.text[: at + len(completion.stop_string)] if include else completion.text[:at]


class ServerState:
    """What the endpoints share: the scheduler, the tokenizer, the name, context and caps."""

    def __init__(
        self,
        generator: Any,
        tokenizer: Any,
        model_name: str,
        context_length: int | None,
        default_max_tokens: int | None,
        max_sequences: int,
        max_tokens_limit: int,
        chunk_tokens: int = 8,
    ):
        # Imported here: the scheduler needs torch, and ``slowthink --help`` must not.
        from slowthink.serve_scheduler import Scheduler

        self.scheduler = Scheduler(generator, batch_size=getattr(generator, "batch_size", 64), chunk_tokens=chunk_tokens)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.context_length = context_length
        self.default_max_tokens = default_max_tokens
        self.max_sequences = max_sequences
        self.max_tokens_limit = max_tokens_limit

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.model_name:
            raise LookupError(f"The model '{requested}' does not exist; this server serves '{self.model_name}'")

    def check_size(self, prompts: list[list[int]], n: int) -> None:
        """Prompts x n per request is capped, so one request cannot hold the server (issue 8)."""
        if len(prompts) * n > self.max_sequences:
            raise RequestError(
                f"{len(prompts)} prompts x n={n} = {len(prompts) * n} sequences exceeds this server's limit of "
                f"{self.max_sequences} sequences per request (slowthink serve --max-sequences); split the request"
            )

    def max_tokens(self, requested: int | None, prompts: list[list[int]]) -> int:
        """The generation budget. Without one: the context that remains (as vLLM), capped by
        ``--max-tokens-limit`` and ``--default-max-tokens``; like vLLM, a request past the
        context is refused."""
        longest = max(len(p) for p in prompts)
        room = None if self.context_length is None else self.context_length - longest
        if room is not None and room < 1:
            raise RequestError(
                f"This model's maximum context length is {self.context_length} tokens. However, "
                f"the prompt alone is {longest} tokens, which leaves no room for a completion."
            )
        if requested is None:
            caps = [c for c in (room, self.default_max_tokens, self.max_tokens_limit) if c is not None]
            return min(caps)
        if room is not None and requested > room:
            raise RequestError(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{longest + requested} tokens ({longest} in the prompt, {requested} in the completion)."
            )
        if requested > self.max_tokens_limit:
            raise RequestError(
                f"'max_tokens' {requested} exceeds this server's limit of {self.max_tokens_limit} "
                f"tokens per completion (slowthink serve --max-tokens-limit)"
            )
        return requested

    def token_text(self, token_id: int, as_ids: bool) -> str:
        return f"token_id:{token_id}" if as_ids else self.tokenizer.decode([token_id])

    def encode_prompts(self, prompt: str | list[int] | list[str] | list[list[int]]) -> list[list[int]]:
        """One token-id list per prompt, whichever of the four OpenAI shapes ``prompt`` takes."""
        if isinstance(prompt, str):
            prompts: list[Any] = [prompt]
        elif prompt and all(isinstance(t, int) for t in prompt):
            prompts = [prompt]
        else:
            prompts = list(prompt)
        if not prompts:
            raise RequestError("'prompt' is empty")
        encoded = [self.tokenizer.encode(p, add_special_tokens=False) if isinstance(p, str) else list(p) for p in prompts]
        vocab = len(self.tokenizer)
        for ids in encoded:
            if not ids:
                raise RequestError("'prompt' encodes to no tokens")
            bad = [t for t in ids if not 0 <= t < vocab]
            if bad:
                raise RequestError(f"'prompt' holds token id {bad[0]} outside the vocabulary (size {vocab})")
        return encoded


def _usage(prompts: list[list[int]], completions: list[Completion], n: int) -> dict[str, int]:
    prompt_tokens = sum(len(p) for p in prompts) * n
    completion_tokens = sum(len(c.token_ids) for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def prepare_completion(state: ServerState, request: CompletionRequest) -> tuple[list[list[int]], SamplingParams]:
    """The prompts' token ids and the sampling settings; ``RequestError`` (400) when refused."""
    state.check_model(request.model)
    prompts = state.encode_prompts(request.prompt)
    state.check_size(prompts, request.n)
    return prompts, _sampling(request, state.max_tokens(request.max_tokens, prompts))


def completions_reply(state: ServerState, request: CompletionRequest, prompts: list[list[int]], completions: list[Completion]) -> dict[str, Any]:
    choices = []
    for i, c in enumerate(completions):
        logprobs = None
        if request.logprobs is not None:
            tokens = [state.token_text(t, request.return_tokens_as_token_ids) for t in c.token_ids]
            offsets, at = [], 0
            for token in tokens:
                offsets.append(at)
                at += 0 if request.return_tokens_as_token_ids else len(token)
            logprobs = {
                "tokens": tokens,
                "token_logprobs": c.logprobs,
                "top_logprobs": [{t: lp} for t, lp in zip(tokens, c.logprobs)],
                "text_offset": offsets,
            }
        choices.append(_choice(i, c, {"text": _cut_stop(c, request.include_stop_str_in_output)}, logprobs))
    return _reply(state, "cmpl", "text_completion", choices, prompts, completions, request.n)


def _choice(index: int, completion: Completion, body: dict[str, Any], logprobs: Any) -> dict[str, Any]:
    """One choice as OpenAI writes it: index, the text or message, why it ended, log-probs."""
    return {"index": index, **body, "finish_reason": completion.finish_reason, "stop_reason": completion.stop_string, "logprobs": logprobs}


def _reply(
    state: ServerState, id_prefix: str, kind: str, choices: list[dict[str, Any]], prompts: list[list[int]], completions: list[Completion], n: int
) -> dict[str, Any]:
    """The envelope both endpoints share: id, object, created, model, choices, usage."""
    return {
        "id": f"{id_prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": state.model_name,
        "choices": choices,
        "usage": _usage(prompts, completions, n),
    }


def prepare_chat(state: ServerState, request: ChatRequest) -> tuple[list[list[int]], SamplingParams]:
    """The chat template's prompt ids and the sampling settings; ``RequestError`` (400) when refused."""
    state.check_model(request.model)
    if getattr(state.tokenizer, "chat_template", None) is None:
        raise RequestError("this model's tokenizer has no chat template; use /v1/completions")
    text = state.tokenizer.apply_chat_template([m.model_dump() for m in request.messages], tokenize=False, add_generation_prompt=True)
    prompts = [state.tokenizer.encode(text, add_special_tokens=False)]
    if not prompts[0]:
        raise RequestError("'messages' render to an empty prompt")
    state.check_size(prompts, request.n)
    wanted = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    return prompts, _sampling(request, state.max_tokens(wanted, prompts))


def chat_reply(state: ServerState, request: ChatRequest, prompts: list[list[int]], completions: list[Completion]) -> dict[str, Any]:
    choices = []
    for i, c in enumerate(completions):
        logprobs = None
        if request.logprobs:
            logprobs = {
                "content": [
                    {"token": state.token_text(t, request.return_tokens_as_token_ids), "logprob": lp, "bytes": None, "top_logprobs": []}
                    for t, lp in zip(c.token_ids, c.logprobs)
                ]
            }
        message = {"role": "assistant", "content": _cut_stop(c, request.include_stop_str_in_output)}
        choices.append(_choice(i, c, {"message": message}, logprobs))
    return _reply(state, "chatcmpl", "chat.completion", choices, prompts, completions, request.n)


def serve(
    model: str = "tiny",
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    default_max_tokens: int | None = None,
    batch_size: int = 64,
    max_sequences: int = 256,
    max_tokens_limit: int = 4096,
    chunk_tokens: int = 8,
) -> None:
    """Load ``model`` (``tiny``, a directory or a hub name) on CPU and serve it until interrupted."""
    import uvicorn

    from slowthink.modeling import load_model_and_tokenizer, set_torch_threads
    from slowthink.rollout.factory import hf_engine

    threads = set_torch_threads()
    loaded, tokenizer = load_model_and_tokenizer(model)
    loaded.eval()
    context = getattr(loaded.config, "max_position_embeddings", None)
    name = served_model_name or model
    from slowthink.serve_app import create_app

    app = create_app(
        hf_engine(loaded, tokenizer, batch_size=batch_size),
        tokenizer,
        name,
        context,
        default_max_tokens,
        max_sequences,
        max_tokens_limit,
        chunk_tokens,
    )
    print(f"slowthink serve: model '{name}' (context {context}, {threads} torch threads) at http://{host}:{port}/v1", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


class ServeConfig(StrictConfig):
    """Everything ``slowthink serve`` needs: a YAML file, the flags, or key=value overrides."""

    model: str = "tiny"
    """'tiny' (embedded), a local Hugging Face model directory, or a hub name."""
    host: str = "127.0.0.1"
    """Interface to bind (127.0.0.1: this machine only)."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port."""
    served_model_name: str | None = None
    """Name clients send as 'model' (null: the model key's value)."""
    default_max_tokens: int | None = Field(None, ge=1)
    """Chat max_tokens when a request gives none (null: the context that remains)."""
    batch_size: int = Field(64, ge=1)
    """Sequences decoded together."""
    max_sequences: int = Field(256, ge=1)
    """Per request: prompts x n above this is refused (400)."""
    max_tokens_limit: int = Field(4096, ge=1)
    """Per request: max_tokens above this is refused (400)."""
    chunk_tokens: int = Field(8, ge=1)
    """Tokens a batch decodes per turn before the next request's (fairness between requests)."""
