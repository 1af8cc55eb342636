"""``slowthink serve``: an OpenAI-compatible HTTP server over the CPU ``HFGenerator``.

Endpoints: ``GET /v1/models``, ``POST /v1/completions`` (prompt as a string, a list of
token ids, or a list of either) and ``POST /v1/chat/completions`` (the tokenizer's chat
template). It exists so that the OpenAI backend is tested against a real server, and so a
small checkpoint can be served without vLLM.

Semantics follow vLLM where OpenAI leaves room: ``temperature=0`` is greedy; the stop
string is cut from the text unless ``include_stop_str_in_output``; ``logprobs`` reports the
sampled token only (its log-prob under the sampling temperature, before top-p), and
``return_tokens_as_token_ids`` spells tokens as ``"token_id:N"``. A request that would run
past the model's context is refused with 400, as vLLM does. Requests that arrive together
with the same sampling settings are generated as one batch by a single worker thread, so
the model never runs in two threads at once.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from contextlib import asynccontextmanager
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from slowthink.rollout.generator import Completion, SamplingParams


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); the message says which field and why."""


class _Request(BaseModel):
    # Unknown OpenAI fields (user, frequency_penalty=0, ...) are accepted and ignored;
    # the ones that would change the result are checked in ``_sampling``.
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = Field(1, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


class CompletionRequest(_Request):
    prompt: str | list[int] | list[str] | list[list[int]]
    # The OpenAI completions default.
    max_tokens: int | None = 16
    logprobs: int | None = None
    echo: bool = False


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Request):
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None


@dataclass
class _Job:
    prompts: list[list[int]]
    params: SamplingParams
    future: Future = field(default_factory=Future)


class BatchingWorker:
    """One thread runs the generator; jobs with equal sampling settings that wait together
    are merged into one ``generate`` call (batched decoding is far cheaper per token)."""

    def __init__(self, generator: Any, max_batch_prompts: int = 64):
        self.generator = generator
        self.max_batch_prompts = max_batch_prompts
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="slowthink-serve-generator", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        job = _Job(prompts, params)
        self._queue.put(job)
        return job.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _take_batch(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus waiting jobs with the same params; True when a close was seen."""
        batch, others, closing = [first], [], False
        size = len(first.prompts)
        while size < self.max_batch_prompts:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                closing = True
                break
            if job.params == first.params:
                batch.append(job)
                size += len(job.prompts)
            else:
                others.append(job)
        for job in others:
            self._queue.put(job)
        return batch, closing

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = self._take_batch(first)
            prompts = [p for job in batch for p in job.prompts]
            try:
                completions = self.generator.generate(prompts, first.params)
            except Exception as exc:  # handed to the waiting request, which answers 500
                for job in batch:
                    job.future.set_exception(exc)
            else:
                n, offset = first.params.n, 0
                for job in batch:
                    count = len(job.prompts) * n
                    mine = completions[offset : offset + count]
                    for c in mine:
                        c.prompt_index -= offset // n
                    job.future.set_result(mine)
                    offset += count
            if closing:
                return


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
        return SamplingParams(temperature=request.temperature, top_p=request.top_p, max_new_tokens=max_tokens,
                              stop=_stop_tuple(request.stop), n=request.n, seed=request.seed)
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
    """What the endpoints share: the batching worker, the tokenizer, the name and context."""

    def __init__(self, generator: Any, tokenizer: Any, model_name: str, context_length: int | None,
                 default_max_tokens: int):
        self.worker = BatchingWorker(generator)
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.context_length = context_length
        self.default_max_tokens = default_max_tokens

    def check_model(self, requested: str | None) -> None:
        if requested is not None and requested != self.model_name:
            raise LookupError(f"The model '{requested}' does not exist; this server serves '{self.model_name}'")

    def max_tokens(self, requested: int | None, prompts: list[list[int]]) -> int:
        """The generation budget; like vLLM, a request past the context is refused."""
        wanted = self.default_max_tokens if requested is None else requested
        if wanted < 1:
            raise RequestError(f"'max_tokens' must be >= 1, got {wanted}")
        longest = max(len(p) for p in prompts)
        if self.context_length is not None and longest + wanted > self.context_length:
            raise RequestError(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{longest + wanted} tokens ({longest} in the prompt, {wanted} in the completion)."
            )
        return wanted

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
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completions_reply(state: ServerState, request: CompletionRequest) -> dict[str, Any]:
    state.check_model(request.model)
    prompts = state.encode_prompts(request.prompt)
    params = _sampling(request, state.max_tokens(request.max_tokens, prompts))
    completions = state.worker.submit(prompts, params)
    choices = []
    for i, c in enumerate(completions):
        logprobs = None
        if request.logprobs is not None:
            tokens = [state.token_text(t, request.return_tokens_as_token_ids) for t in c.token_ids]
            offsets, at = [], 0
            for token in tokens:
                offsets.append(at)
                at += 0 if request.return_tokens_as_token_ids else len(token)
            logprobs = {"tokens": tokens, "token_logprobs": c.logprobs,
                        "top_logprobs": [{t: lp} for t, lp in zip(tokens, c.logprobs)], "text_offset": offsets}
        choices.append({"index": i, "text": _cut_stop(c, request.include_stop_str_in_output),
                        "finish_reason": c.finish_reason, "stop_reason": c.stop_string, "logprobs": logprobs})
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": state.model_name, "choices": choices, "usage": _usage(prompts, completions, request.n)}


def chat_reply(state: ServerState, request: ChatRequest) -> dict[str, Any]:
    state.check_model(request.model)
    if getattr(state.tokenizer, "chat_template", None) is None:
        raise RequestError("this model's tokenizer has no chat template; use /v1/completions")
    text = state.tokenizer.apply_chat_template([m.model_dump() for m in request.messages], tokenize=False,
                                               add_generation_prompt=True)
    prompts = [state.tokenizer.encode(text, add_special_tokens=False)]
    wanted = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    params = _sampling(request, state.max_tokens(wanted, prompts))
    completions = state.worker.submit(prompts, params)
    choices = []
    for i, c in enumerate(completions):
        logprobs = None
        if request.logprobs:
            logprobs = {"content": [
                {"token": state.token_text(t, request.return_tokens_as_token_ids), "logprob": lp, "bytes": None,
                 "top_logprobs": []}
                for t, lp in zip(c.token_ids, c.logprobs)
            ]}
        choices.append({"index": i, "message": {"role": "assistant", "content": _cut_stop(c, request.include_stop_str_in_output)},
                        "finish_reason": c.finish_reason, "stop_reason": c.stop_string, "logprobs": logprobs})
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": state.model_name, "choices": choices, "usage": _usage(prompts, completions, request.n)}


def create_app(generator: Any, tokenizer: Any, model_name: str, context_length: int | None = None,
               default_max_tokens: int = 1024) -> Any:
    """The FastAPI application over ``generator`` (any ``Generator``) and its tokenizer."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    state = ServerState(generator, tokenizer, model_name, context_length, default_max_tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.worker.close()

    app = FastAPI(title="slowthink serve", lifespan=lifespan)
    app.state.slowthink = state

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})

    @app.exception_handler(RequestError)
    async def _bad_request(_: Request, exc: RequestError) -> JSONResponse:
        return error(400, str(exc), "BadRequestError")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return error(400, f"invalid request: {details}", "BadRequestError")

    @app.exception_handler(Exception)
    async def _failed(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"generation failed: {type(exc).__name__}: {exc}", "InternalServerError")

    @app.exception_handler(LookupError)
    async def _not_found(_: Request, exc: LookupError) -> JSONResponse:
        return error(404, str(exc), "NotFoundError")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": int(time.time()), "owned_by": "slowthink",
                "max_model_len": context_length}
        return {"object": "list", "data": [card]}

    @app.post("/v1/completions")
    def completions(request: CompletionRequest) -> dict[str, Any]:
        return completions_reply(state, request)

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> dict[str, Any]:
        return chat_reply(state, request)

    return app


def serve(model: str = "tiny", host: str = "127.0.0.1", port: int = 8000, served_model_name: str | None = None,
          default_max_tokens: int = 1024, batch_size: int = 64) -> None:
    """Load ``model`` (``tiny``, a directory or a hub name) on CPU and serve it until interrupted."""
    import uvicorn

    from slowthink.modeling import load_model_and_tokenizer, set_torch_threads
    from slowthink.rollout.hf import HFGenerator

    threads = set_torch_threads()
    loaded, tokenizer = load_model_and_tokenizer(model)
    loaded.eval()
    context = getattr(loaded.config, "max_position_embeddings", None)
    name = served_model_name or model
    app = create_app(HFGenerator(loaded, tokenizer, batch_size=batch_size), tokenizer, name, context, default_max_tokens)
    print(f"slowthink serve: model '{name}' (context {context}, {threads} torch threads) at http://{host}:{port}/v1",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def serve_cli(
    model: str = typer.Option("tiny", help="'tiny' (embedded), a local HF model directory, or a hub name"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (127.0.0.1: this machine only)"),
    port: int = typer.Option(8000, help="TCP port"),
    served_model_name: str = typer.Option(None, help="name clients send as 'model' (default: --model)"),
    default_max_tokens: int = typer.Option(1024, help="chat max_tokens when a request gives none"),
    batch_size: int = typer.Option(64, help="sequences decoded together"),
) -> None:
    """Serve a model over an OpenAI-compatible API (/v1/models, /v1/completions, /v1/chat/completions) on CPU."""
    from slowthink.modeling import ModelLoadError

    try:
        serve(model, host, port, served_model_name, default_max_tokens, batch_size)
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
