"""``OpenAIGenerator`` against a scripted HTTP server: request mapping, parsing, retries, errors.

The scripted server is ``httpx.MockTransport`` (the HTTP client is real); the real server
(``slowthink serve``) is exercised in tests/test_serve.py.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.openai_backend import OpenAIBackendError, OpenAIGenerator

URL = "http://server.test/v1"


def choice(index: int, ids: list[int], text: str, reason: str = "stop", stop_reason=None) -> dict:
    return {
        "index": index,
        "text": text,
        "finish_reason": reason,
        "stop_reason": stop_reason,
        "logprobs": {"tokens": [f"token_id:{i}" for i in ids], "token_logprobs": [-0.5] * len(ids)},
    }


class Script:
    """Replies to /v1/completions from a list of (status, body); records every request."""

    def __init__(self, replies: list[tuple[int, dict]]):
        self.replies = list(replies)
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "served-model"}]})
        self.requests.append(json.loads(request.content))
        status, body = self.replies.pop(0)
        return httpx.Response(status, json=body)


def generator(script: Script, **kwargs) -> OpenAIGenerator:
    return OpenAIGenerator(URL, transport=httpx.MockTransport(script), backoff_s=0.0, **kwargs)


def test_request_maps_sampling_params_and_sends_token_ids():
    script = Script([(200, {"choices": [choice(1, [7, 8], "b", "length"), choice(0, [5], "a</s>", stop_reason="</s>")]})])
    params = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=32, stop=("</s>",), n=2, seed=3)
    with generator(script) as gen:
        completions = gen.generate([[1, 2, 3]], params)
    body = script.requests[0]
    assert body["model"] == "served-model" and body["prompt"] == [1, 2, 3]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["n"], body["seed"]) == (0.6, 0.95, 32, 2, 3)
    assert body["stop"] == ["</s>"] and body["logprobs"] == 1
    assert body["return_tokens_as_token_ids"] is True and body["include_stop_str_in_output"] is True
    # Choices come back ordered by their index, with ids and log-probs from "token_id:N".
    assert [c.token_ids for c in completions] == [[5], [7, 8]]
    assert [c.finish_reason for c in completions] == ["stop", "length"]
    assert completions[0].stop_string == "</s>" and completions[0].logprobs == [-0.5]
    assert {c.prompt_index for c in completions} == {0}


def test_prompt_major_order_over_concurrent_requests():
    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        prompt = json.loads(request.content)["prompt"]
        return httpx.Response(200, json={"choices": [choice(0, prompt, f"p{prompt[0]}")]})

    with OpenAIGenerator(URL, transport=httpx.MockTransport(reply), concurrency=3) as gen:
        completions = gen.generate([[i] for i in range(7)], SamplingParams(n=1))
    assert [c.text for c in completions] == [f"p{i}" for i in range(7)]
    assert [c.prompt_index for c in completions] == list(range(7))


def test_retries_5xx_then_succeeds():
    script = Script([(503, {"error": "busy"}), (500, {"error": "oops"}), (200, {"choices": [choice(0, [4], "x")]})])
    with generator(script, max_retries=2) as gen:
        (completion,) = gen.generate([[1]], SamplingParams())
    assert len(script.requests) == 3 and completion.token_ids == [4]


def test_gives_up_after_the_last_retry_naming_url_and_status():
    script = Script([(503, {"error": "overloaded"})] * 3)
    with generator(script, max_retries=2, model="m") as gen, pytest.raises(OpenAIBackendError) as info:
        gen.generate([[1]], SamplingParams())
    message = str(info.value)
    assert f"POST {URL}/completions failed after 3 attempt(s)" in message and "HTTP 503" in message
    assert "overloaded" in message


def test_client_errors_are_not_retried():
    script = Script([(400, {"error": {"message": "max_tokens too large"}})])
    with generator(script, max_retries=5, model="m") as gen, pytest.raises(OpenAIBackendError, match="HTTP 400.*max_tokens too large"):
        gen.generate([[1]], SamplingParams())
    assert len(script.requests) == 1


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}", model="m", max_retries=1, backoff_s=0.0, timeout_s=2.0)
    with gen, pytest.raises(OpenAIBackendError, match=rf"http://127.0.0.1:{port}/v1/completions failed after 2 attempt\(s\).*ConnectError"):
        gen.generate([[1]], SamplingParams())


class SpaceTokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [len(word) for word in text.split()]


def test_text_only_server_falls_back_to_reencoding_with_a_tokenizer():
    text_only = {"choices": [{"index": 0, "text": "four score and", "finish_reason": "length", "logprobs": None}]}
    with generator(Script([(200, text_only)]), model="m", tokenizer=SpaceTokenizer()) as gen:
        (completion,) = gen.generate_text(["say"], SamplingParams())
    assert completion.token_ids == [4, 5, 3] and completion.logprobs == [0.0, 0.0, 0.0]
    with generator(Script([(200, text_only)]), model="m") as gen, pytest.raises(OpenAIBackendError, match="pass a tokenizer"):
        gen.generate([[1]], SamplingParams())


def test_unexpected_finish_reason_and_choice_count_are_errors():
    bad_reason = {"choices": [dict(choice(0, [1], "x"), finish_reason="abort")]}
    with generator(Script([(200, bad_reason)]), model="m") as gen, pytest.raises(OpenAIBackendError, match="'abort'"):
        gen.generate([[1]], SamplingParams())
    one_choice = {"choices": [choice(0, [1], "x")]}
    with generator(Script([(200, one_choice)]), model="m") as gen, pytest.raises(OpenAIBackendError, match="1 choices for n=2"):
        gen.generate([[1]], SamplingParams(n=2))


def test_update_weights_explains_why_not():
    with generator(Script([]), model="m") as gen, pytest.raises(OpenAIBackendError, match="no weight-update API"):
        gen.update_weights(object())


def test_api_key_is_sent_as_bearer_token():
    seen = {}

    def reply(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"choices": [choice(0, [1], "x")]})

    with OpenAIGenerator(URL, model="m", api_key="sk-test", transport=httpx.MockTransport(reply)) as gen:
        gen.generate([[1]], SamplingParams())
    assert seen["auth"] == "Bearer sk-test"
