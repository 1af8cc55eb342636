"""The FastAPI application of ``slowthink serve``: endpoints, error mapping, the wait that
cancels a request when its client hangs up, and streaming. Request models and validation
live in ``slowthink.serve.api``, the JSON bodies in ``slowthink.serve.replies``, the fair
scheduler in ``slowthink.serve.scheduler``; ``slowthink.serve.server`` runs this application.

Streaming (``stream: true``): the scheduler hands the request's rows to a listener after
every turn (``--chunk-tokens`` tokens); the handler turns them into server-sent events. When
the client goes away, Starlette cancels the handler's generator, whose ``finally`` cancels
the request, so its rows leave their batch before the next turn.

Must not import the CLI; the one module that imports fastapi (tests/test_layers.py).

No ``from __future__ import annotations`` here: FastAPI must see the ``Request`` class
itself in the endpoints' signatures, not a string it cannot resolve.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from slowthink.rollout.generator import Completion
from slowthink.serve.api import ChatRequest, CompletionRequest, Plan, RequestError, SamplingRequest, ServerState, prepare_chat, prepare_completion
from slowthink.serve.replies import StreamWriter, TopLogprobs, chat_reply, completions_reply

# How often a waiting request checks whether its client is still connected.
DISCONNECT_POLL_S = 0.1


class ClientGone(Exception):
    """The client hung up before its completions were ready; its request was cancelled."""


def _submit(state: ServerState, plan: Plan, listener: Any = None) -> Any:
    return state.scheduler.submit(plan.prompts, plan.params, plan.logit_bias, plan.top_logprobs, listener)


async def generate(state: ServerState, plan: Plan, connection: Any) -> tuple[list[Completion], dict[int, TopLogprobs]]:
    """Wait for the scheduler, checking that the client is still there; if it is not (or
    this handler is cancelled), cancel the request so it stops taking turns (abandoned requests
    used to hold every other one for minutes)."""
    job = _submit(state, plan)
    waiting = asyncio.wrap_future(job.future)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S)
            if done:
                return waiting.result(), job.top
            if await connection.is_disconnected():
                raise ClientGone()
    finally:
        if not job.future.done():
            job.cancel()


async def stream(state: ServerState, request: SamplingRequest, plan: Plan, chat: bool) -> AsyncIterator[str]:
    """The request's server-sent events, as the scheduler reports its rows (module docstring)."""
    loop = asyncio.get_running_loop()
    news: asyncio.Queue = asyncio.Queue()

    # Both run on the scheduler thread; the queue is read here, in order: rows, then None.
    def listener(rows: list) -> None:
        loop.call_soon_threadsafe(news.put_nowait, rows)

    job = _submit(state, plan, listener)
    job.future.add_done_callback(lambda _: loop.call_soon_threadsafe(news.put_nowait, None))
    writer = StreamWriter(state, request, plan, chat)
    try:
        for event in writer.opening():
            yield event
        while (rows := await news.get()) is not None:
            # Decoding the text so far runs off the event loop, as tokenizing does.
            for event in await run_in_threadpool(writer.update, rows):
                yield event
        if job.future.cancelled():
            return
        failure = job.future.exception()
        if failure is not None:
            yield writer.error(f"generation failed: {type(failure).__name__}: {failure}")
            return
        for event in writer.closing():
            yield event
    finally:
        if not job.future.done():
            job.cancel()


def create_app(
    generator: Any,
    tokenizer: Any,
    model_name: str,
    context_length: int | None = None,
    default_max_tokens: int | None = None,
    max_sequences: int = 256,
    max_tokens_limit: int = 4096,
    chunk_tokens: int = 8,
) -> Any:
    """The FastAPI application over ``generator`` (an ``HFGenerator``: the scheduler steps its
    ``start_batch``) and its tokenizer; the caps are per request (see ``slowthink.cli.serve``)."""
    state = ServerState(generator, tokenizer, model_name, context_length, default_max_tokens, max_sequences, max_tokens_limit, chunk_tokens)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.scheduler.close()

    app = FastAPI(title="slowthink serve", lifespan=lifespan)
    app.state.slowthink = state

    def error(status: int, message: str, kind: str) -> JSONResponse:
        # A message may quote the request (a model name): a lone surrogate in it is escaped,
        # or the JSON encoder would turn this 400 into a 500.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})

    @app.exception_handler(RequestError)
    async def _bad_request(_: Request, exc: RequestError) -> JSONResponse:
        return error(400, str(exc), "BadRequestError")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        def where(e: dict) -> str:
            # The body's JSON path, e.g. 'messages.0.content' ('body' itself when the JSON is malformed).
            return ".".join(str(p) for p in e["loc"][1:]) or "body"

        details = "; ".join(f"{where(e)}: {e['msg']}" for e in exc.errors())
        return error(400, f"invalid request: {details}", "BadRequestError")

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> Response:
        # Nobody reads this; 499 is nginx's "client closed request".
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _failed(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"generation failed: {type(exc).__name__}: {exc}", "InternalServerError")

    @app.exception_handler(LookupError)
    async def _not_found(_: Request, exc: LookupError) -> JSONResponse:
        return error(404, str(exc), "NotFoundError")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": int(time.time()), "owned_by": "slowthink", "max_model_len": context_length}
        return {"object": "list", "data": [card]}

    @app.get("/stats")
    def stats() -> dict[str, int]:
        return state.scheduler.stats()

    def events(request: SamplingRequest, plan: Plan, chat: bool) -> StreamingResponse:
        # No proxy buffering: each event is meant to reach the client as it is written.
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(state, request, plan, chat), media_type="text/event-stream", headers=headers)

    # Tokenizing and rendering run in the thread pool; the wait runs here, watching the client.
    async def answer(request: SamplingRequest, connection: Request, chat: bool) -> dict[str, Any] | StreamingResponse:
        prepare, reply = (prepare_chat, chat_reply) if chat else (prepare_completion, completions_reply)
        plan = await run_in_threadpool(prepare, state, request)
        if request.stream:
            return events(request, plan, chat=chat)
        done, tops = await generate(state, plan, connection)
        return await run_in_threadpool(reply, state, request, plan, done, tops)

    @app.post("/v1/completions", response_model=None)
    async def completions(request: CompletionRequest, connection: Request) -> dict[str, Any] | StreamingResponse:
        return await answer(request, connection, chat=False)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: ChatRequest, connection: Request) -> dict[str, Any] | StreamingResponse:
        return await answer(request, connection, chat=True)

    return app
