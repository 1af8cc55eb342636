"""What a ``slowthink serve`` request may hold, and how a valid one becomes a ``Plan``.

Must not import the CLI, fastapi or uvicorn (tests/test_layers.py); the scheduler, which
needs torch, is imported only when a ``ServerState`` is built.

Endpoints: ``GET /v1/models``, ``POST /v1/completions`` (prompt as a string, a list of
token ids, or a list of either) and ``POST /v1/chat/completions`` (the tokenizer's chat
template). The request models here are what the endpoints of ``slowthink.serve.app``
accept; ``ServerState`` checks each request against the model and the server's caps and
``prepare_completion`` / ``prepare_chat`` turn it into a ``Plan`` for the scheduler.

Semantics follow vLLM where OpenAI leaves room: ``temperature=0`` is greedy; the stop
string is cut from the text unless ``include_stop_str_in_output``; log-probs are under the
sampling temperature, before top-p; ``return_tokens_as_token_ids`` spells tokens as
``"token_id:N"``. A request that would run past the model's context is refused with 400, as
vLLM does; without ``max_tokens`` a chat request gets the context that remains (capped by
``--max-tokens-limit``). ``stream=true`` sends server-sent events (``slowthink.serve.app``).

Nothing is silently ignored: every field the server reads is declared on the request
models; a field OpenAI defines but this server does not implement is accepted only at the
value that means "off" (``_OFF``), and any other field that is not null is a 400 naming it.
Every malformed request is a 400 that names the field (NaN, out-of-range seeds, empty
messages, lone surrogates, a temperature too small to divide by), never a 500.

One scheduler thread runs the model (``slowthink.serve.scheduler``): requests take turns a few
tokens at a time, so a small request is never stuck behind a big one; a request whose
client hangs up is cancelled; each request samples from its own generator state, so a
seeded request gives the same output alone or among others. Per request, prompts x n and
``max_tokens`` are capped (400 naming the limit), and a prompt too long in bytes to fit the
context is refused before it is tokenized. ``GET /stats`` reports the scheduler's counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from slowthink.rollout.generator import SamplingParams

# Below this a temperature overflows the logits (logits / T in float32); 0 is greedy.
MIN_TEMPERATURE = 1e-5
# Below this top_p rounds to 0 in float32 and keeps no token at all.
MIN_TOP_P = 1e-5
# OpenAI's bounds: logit_bias values, and alternatives per token (top_logprobs, logprobs).
MAX_LOGIT_BIAS = 100.0
MAX_TOP_LOGPROBS = 20


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); the message says which field and why."""


def _utf8(text: str) -> str:
    """JSON may carry a lone surrogate (``"\\udcff"``); no tokenizer can encode one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a lone surrogate {text[exc.start]!r} at character {exc.start}; send valid UTF-8 text") from None
    return text


def _temperature(value: float) -> float:
    if 0 < value < MIN_TEMPERATURE:
        raise ValueError(f"{value!r} is too small to sample with; use 0 for greedy decoding or at least {MIN_TEMPERATURE}")
    return value


Text = Annotated[str, AfterValidator(_utf8)]
# OpenAI's seed is a 64-bit signed integer.
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Bias = Annotated[float, Field(ge=-MAX_LOGIT_BIAS, le=MAX_LOGIT_BIAS)]

# Fields OpenAI defines that this server does not implement, with the test for the value
# that means "off" (the output is then what it would be without them). Any other value is a
# 400 naming the field; so is a field that is neither declared nor listed here.
_OFF = {
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "echo": lambda v: v is False,
    "suffix": lambda v: v == "",
    "response_format": lambda v: v == {"type": "text"},
    "tools": lambda v: v == [],
    "tool_choice": lambda v: v == "none",
    "parallel_tool_calls": lambda v: isinstance(v, bool),
    "functions": lambda v: v == [],
    "function_call": lambda v: v == "none",
    "store": lambda v: v is False,
    # Ours decode with special tokens skipped, as vLLM's default.
    "skip_special_tokens": lambda v: v is True,
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class SamplingRequest(BaseModel):
    # Undeclared fields are kept so that ``refuse_unimplemented`` can name them.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: Text | None = None
    temperature: Annotated[float, Field(ge=0), AfterValidator(_temperature)] = 1.0
    top_p: float = Field(1.0, ge=MIN_TOP_P, le=1)
    n: int = Field(1, ge=1, le=128)
    stop: Text | list[Text] | None = None
    seed: Seed | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Token id (as a string, as OpenAI sends it) -> added to that token's logit.
    logit_bias: dict[str, Bias] | None = None
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = False
    # OpenAI's end-user id, for its abuse monitoring: nothing to do here.
    user: str | None = None


class CompletionRequest(SamplingRequest):
    prompt: Text | list[int] | list[Text] | list[list[int]]
    # The OpenAI completions default.
    max_tokens: int | None = Field(16, ge=1)
    # The number of most likely tokens listed per token (OpenAI's completions logprobs).
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    # Samples per prompt; the n with the highest log-prob per token are returned.
    best_of: int | None = Field(None, ge=1, le=128)


class ChatMessage(BaseModel):
    # A field other than these (a participant's "name", "tool_calls") would change the
    # prompt OpenAI renders: refused unless null, as the request's own fields are.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant"]
    content: Text

    @model_validator(mode="after")
    def _no_other_field(self) -> ChatMessage:
        unknown = [name for name, value in (self.model_extra or {}).items() if value is not None]
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not supported by slowthink serve (a message has a role and a text content)")
        return self

    def rendered(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class ChatRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


def refuse_unimplemented(request: SamplingRequest) -> None:
    """A 400 for the first field the server would otherwise ignore (see ``_OFF``)."""
    for name, value in (request.model_extra or {}).items():
        if value is None:  # null is how many clients write "not given"
            continue
        off = _OFF.get(name)
        if off is None:
            raise RequestError(f"'{name}' is not supported by slowthink serve (fields it does not implement are refused, not ignored)")
        if not off(value):
            raise RequestError(f"'{name}' is not supported by slowthink serve; only its default value is accepted")
    if request.stream_options is not None and not request.stream:
        raise RequestError("'stream_options' is only allowed when 'stream' is true")


@dataclass(frozen=True)
class Plan:
    """A validated request, as the scheduler takes it."""

    prompts: list[list[int]]
    # ``params.n`` is the samples generated per prompt (best_of when given).
    params: SamplingParams
    # Choices returned per prompt (n; fewer than params.n with best_of).
    n: int
    logit_bias: tuple[tuple[int, float], ...] = ()
    top_logprobs: int = 0


def _stop_tuple(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)


def _sampling(request: SamplingRequest, max_tokens: int, samples: int) -> SamplingParams:
    """Map a request onto ``SamplingParams``."""
    try:
        return SamplingParams(
            temperature=request.temperature,
            top_p=request.top_p,
            max_new_tokens=max_tokens,
            stop=_stop_tuple(request.stop),
            n=samples,
            seed=request.seed,
        )
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _refuse_in_stream(request: SamplingRequest, logprobs: bool, best_of: int | None) -> None:
    """What a stream cannot carry: log-probs (not implemented in chunks) and best_of (the
    best samples are known only at the end, as OpenAI says)."""
    if request.stream and logprobs:
        raise RequestError("'logprobs' with 'stream' is not supported by slowthink serve; request without stream")
    if request.stream and best_of is not None and best_of != request.n:
        raise RequestError("'best_of' cannot be used with 'stream'")


def _longest_token_bytes(tokenizer: Any) -> int:
    """An upper bound on the UTF-8 bytes one token stands for: the longest vocabulary entry
    (byte-level pieces such as 'Ġ' and byte-fallback pieces such as '<0xE3>' are longer
    than the bytes they stand for)."""
    return max(len(piece.encode("utf-8", "surrogatepass")) for piece in tokenizer.get_vocab())


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
        from slowthink.serve.scheduler import Scheduler

        self.scheduler = Scheduler(generator, batch_size=getattr(generator, "batch_size", 64), chunk_tokens=chunk_tokens)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.context_length = context_length
        self.default_max_tokens = default_max_tokens
        self.max_sequences = max_sequences
        self.max_tokens_limit = max_tokens_limit
        # A prompt longer than this in bytes has more tokens than the context holds: it is
        # refused before tokenizing (a 5 MB prompt took ~35 s to tokenize, then got a 400).
        self.max_prompt_bytes = None if context_length is None else context_length * _longest_token_bytes(tokenizer)

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.model_name:
            raise LookupError(f"The model '{requested}' does not exist; this server serves '{self.model_name}'")

    def check_size(self, prompts: list[list[int]], n: int) -> None:
        """Prompts x n per request is capped, so one request cannot hold the server."""
        if len(prompts) * n > self.max_sequences:
            raise RequestError(
                f"{len(prompts)} prompts x n={n} = {len(prompts) * n} sequences exceeds this server's limit of "
                f"{self.max_sequences} sequences per request (slowthink serve --max-sequences); split the request"
            )

    def check_bytes(self, field: str, texts: list[str]) -> None:
        """Refuse, without tokenizing, text too long in bytes to fit the context in tokens."""
        if self.max_prompt_bytes is None:
            return
        for text in texts:
            size = len(text.encode("utf-8"))
            if size > self.max_prompt_bytes:
                raise RequestError(
                    f"'{field}' is {size} bytes: more than fits this model's context of {self.context_length} tokens "
                    f"(at most {self.max_prompt_bytes} bytes, {self.max_prompt_bytes // self.context_length} per token at the longest)"
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

    def logit_bias(self, request: SamplingRequest) -> tuple[tuple[int, float], ...]:
        """OpenAI's ``{"token id": bias}`` as sorted (id, bias) pairs, each id in the vocabulary."""
        pairs = []
        for key, bias in (request.logit_bias or {}).items():
            try:
                token = int(key)
            except ValueError:
                raise RequestError(f"'logit_bias' key {key!r} is not a token id") from None
            if not 0 <= token < len(self.tokenizer):
                raise RequestError(f"'logit_bias' token id {token} is outside the vocabulary (size {len(self.tokenizer)})")
            pairs.append((token, float(bias)))
        return tuple(sorted(pairs))

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
        self.check_bytes("prompt", [p for p in prompts if isinstance(p, str)])
        encoded = [self.tokenizer.encode(p, add_special_tokens=False) if isinstance(p, str) else list(p) for p in prompts]
        vocab = len(self.tokenizer)
        for ids in encoded:
            if not ids:
                raise RequestError("'prompt' encodes to no tokens")
            bad = [t for t in ids if not 0 <= t < vocab]
            if bad:
                raise RequestError(f"'prompt' holds token id {bad[0]} outside the vocabulary (size {vocab})")
        return encoded


def prepare_completion(state: ServerState, request: CompletionRequest) -> Plan:
    """The prompts' token ids and the sampling settings; ``RequestError`` (400) when refused."""
    refuse_unimplemented(request)
    state.check_model(request.model)
    if request.best_of is not None and request.best_of < request.n:
        raise RequestError(f"'best_of' ({request.best_of}) must be at least n ({request.n})")
    _refuse_in_stream(request, request.logprobs is not None, request.best_of)
    prompts = state.encode_prompts(request.prompt)
    samples = request.best_of or request.n
    state.check_size(prompts, samples)
    params = _sampling(request, state.max_tokens(request.max_tokens, prompts), samples)
    return Plan(prompts, params, request.n, state.logit_bias(request), request.logprobs or 0)


def prepare_chat(state: ServerState, request: ChatRequest) -> Plan:
    """The chat template's prompt ids and the sampling settings; ``RequestError`` (400) when refused."""
    refuse_unimplemented(request)
    state.check_model(request.model)
    if request.top_logprobs is not None and not request.logprobs:
        raise RequestError("'top_logprobs' needs 'logprobs': true")
    _refuse_in_stream(request, request.logprobs, None)
    if getattr(state.tokenizer, "chat_template", None) is None:
        raise RequestError("this model's tokenizer has no chat template; use /v1/completions")
    state.check_bytes("messages", ["".join(m.content for m in request.messages)])
    text = state.tokenizer.apply_chat_template([m.rendered() for m in request.messages], tokenize=False, add_generation_prompt=True)
    prompts = [state.tokenizer.encode(text, add_special_tokens=False)]
    if not prompts[0]:
        raise RequestError("'messages' render to an empty prompt")
    state.check_size(prompts, request.n)
    wanted = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    params = _sampling(request, state.max_tokens(wanted, prompts), request.n)
    return Plan(prompts, params, request.n, state.logit_bias(request), request.top_logprobs or 0)
