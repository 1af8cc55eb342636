"""Streaming from ``slowthink serve`` with the real OpenAI Python SDK: server-sent events the SDK
parses, text that joins to the non-streamed reply, ``n > 1``, stop strings, usage in the last
chunk, and cancellation when the client goes away mid-stream."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from serve_helpers import running_server

openai = pytest.importorskip("openai", reason="the OpenAI SDK is in the dev extra: pip install -e '.[dev]'")

# Starting the server process costs ~10-17 s.
pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "12+34="}]
PROMPT = "<|user|>12+34=<|assistant|>"


@pytest.fixture(scope="module")
def server():
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def sdk(server):
    with openai.OpenAI(base_url=server, api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def streamed_chat(sdk, **fields) -> tuple[dict[int, str], dict[int, str], list]:
    """Texts and finish reasons per choice index, assembled from the SDK's chunks; all chunks."""
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    chunks = list(sdk.chat.completions.create(model="tiny", messages=MESSAGES, stream=True, **fields))
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    return texts, reasons, chunks


def streamed_completion(sdk, **fields) -> tuple[dict[int, str], dict[int, str], list]:
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    chunks = list(sdk.completions.create(model="tiny", prompt=PROMPT, stream=True, **fields))
    for chunk in chunks:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    return texts, reasons, chunks


def test_streamed_chat_joins_to_the_greedy_reply_and_ends_with_usage(sdk):
    fields = {"max_tokens": 40, "temperature": 0}
    reply = sdk.chat.completions.create(model="tiny", messages=MESSAGES, **fields)
    texts, reasons, chunks = streamed_chat(sdk, stream_options={"include_usage": True}, **fields)
    assert len(chunks) > 3  # it came in pieces
    assert texts == {0: reply.choices[0].message.content} and reasons == {0: reply.choices[0].finish_reason}
    assert chunks[0].choices[0].delta.role == "assistant"
    # Usage only in the last chunk, whose choices are empty (OpenAI's stream_options.include_usage).
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == reply.usage.model_dump()
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streamed_completion_joins_to_the_greedy_reply(sdk):
    fields = {"max_tokens": 40, "temperature": 0}
    reply = sdk.completions.create(model="tiny", prompt=PROMPT, **fields)
    texts, reasons, chunks = streamed_completion(sdk, **fields)
    assert texts == {0: reply.choices[0].text} and reasons == {0: reply.choices[0].finish_reason}
    assert all(chunk.usage is None for chunk in chunks)  # no usage chunk unless asked


def test_streamed_n_choices_equal_the_non_streamed_seeded_ones(sdk):
    fields = {"max_tokens": 24, "temperature": 1.0, "n": 3, "seed": 7}
    reply = sdk.completions.create(model="tiny", prompt=PROMPT, **fields)
    texts, reasons, chunks = streamed_completion(sdk, stream_options={"include_usage": True}, **fields)
    assert texts == {c.index: c.text for c in reply.choices} and len(set(texts.values())) > 1
    assert reasons == {c.index: c.finish_reason for c in reply.choices}
    assert chunks[-1].usage.model_dump() == reply.usage.model_dump()
    chat = sdk.chat.completions.create(model="tiny", messages=MESSAGES, **fields)
    texts, _, _ = streamed_chat(sdk, **fields)
    assert texts == {c.index: c.message.content for c in chat.choices}


def test_streamed_text_stops_at_the_stop_string(sdk):
    free = sdk.completions.create(model="tiny", prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    assert len(free) >= 4, free
    stop = free[2:4]  # two characters the greedy continuation reaches
    for include in (False, True):
        fields = {"max_tokens": 12, "temperature": 0, "stop": [stop], "extra_body": {"include_stop_str_in_output": include}}
        reply = sdk.completions.create(model="tiny", prompt=PROMPT, **fields).choices[0]
        texts, reasons, _ = streamed_completion(sdk, **fields)
        assert texts == {0: reply.text} and reasons == {0: "stop"}
        assert reply.text == free[: free.index(stop) + (len(stop) if include else 0)]


def test_streaming_refuses_what_it_cannot_stream_before_the_first_chunk(sdk):
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        sdk.completions.create(model="tiny", prompt=PROMPT, stream=True, logprobs=1, max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="best_of"):
        sdk.completions.create(model="tiny", prompt=PROMPT, stream=True, best_of=2, max_tokens=4)


def test_a_client_that_goes_away_mid_stream_cancels_its_generation(server):
    root = server.rsplit("/v1", 1)[0]
    before = httpx.get(f"{root}/stats").json()
    body = {"model": "tiny", "prompt": "<|user|>12+34+56=<|assistant|>", "max_tokens": 1000, "temperature": 1.0, "n": 16, "stream": True}
    with httpx.stream("POST", f"{server}/completions", json=body, timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first.removeprefix("data: "))["object"] == "text_completion"
    # The connection is closed: the request must be cancelled and its rows leave the batch.
    deadline = time.monotonic() + 30
    while True:
        stats = httpx.get(f"{root}/stats").json()
        if stats["cancelled_requests"] > before["cancelled_requests"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats["cancelled_requests"] == before["cancelled_requests"] + 1
    assert stats["active_sequences"] == 0 and stats["completed_requests"] == before["completed_requests"]


class FailsAfterSteps:
    """The tiny ``HFGenerator``, except that every batch fails on its 13th decoding step."""

    def __init__(self, hf):
        self.hf = hf
        self.batch_size = hf.batch_size

    def start_batch(self, jobs, params, rngs):
        return FailingBatch(self.hf.start_batch(jobs, params, rngs))


class FailingBatch:
    def __init__(self, batch):
        self.__dict__.update(batch=batch, steps=0)

    def __getattr__(self, name):
        return getattr(self.batch, name)

    def __setattr__(self, name, value):
        setattr(self.batch, name, value)

    def step(self):
        self.__dict__["steps"] += 1
        if self.steps > 12:
            raise RuntimeError("decoding failed on purpose")
        return self.batch.step()


def test_a_failure_mid_stream_reaches_the_sdk_as_an_error():
    """After the first chunk the status (200) is sent: the failure comes as an error event."""
    from fastapi.testclient import TestClient

    from slowthink.models.modeling import load_model_and_tokenizer
    from slowthink.rollout.hf import HFGenerator
    from slowthink.serve.app import create_app

    model, tokenizer = load_model_and_tokenizer("tiny")
    model.eval()
    app = create_app(FailsAfterSteps(HFGenerator(model, tokenizer)), tokenizer, "tiny", context_length=1024, chunk_tokens=4)
    with TestClient(app) as client, openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0) as sdk:
        stream = sdk.completions.create(model="tiny", prompt=PROMPT, stream=True, max_tokens=200, temperature=0)
        received = []
        with pytest.raises(openai.APIError, match="decoding failed on purpose"):
            for chunk in stream:
                received.append(chunk)
        assert received and all(c.choices[0].finish_reason is None for c in received)
        # The scheduler goes on: the next request is served.
        assert sdk.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, temperature=0).choices[0].text
