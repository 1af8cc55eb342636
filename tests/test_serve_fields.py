"""``slowthink serve`` in-process: every OpenAI field is implemented (logit_bias, top_logprobs,
best_of) or refused with a 400 naming it; impossible sampling values and oversized prompts are
400 before any work. Runs the FastAPI app on the tiny model in this process (no subprocess)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from slowthink.models.modeling import load_model_and_tokenizer
from slowthink.rollout.hf import HFGenerator
from slowthink.serve.app import create_app

PROMPT = "<|user|>12+34=<|assistant|>"


class CountingTokenizer:
    """The tiny tokenizer, counting ``encode`` and ``apply_chat_template`` calls (to show a
    request was refused before it was tokenized)."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __len__(self) -> int:
        return len(self._tokenizer)

    def encode(self, *args, **kwargs):
        self.calls += 1
        return self._tokenizer.encode(*args, **kwargs)

    def apply_chat_template(self, *args, **kwargs):
        self.calls += 1
        return self._tokenizer.apply_chat_template(*args, **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    model, tokenizer = load_model_and_tokenizer("tiny")
    model.eval()
    return CountingTokenizer(tokenizer), model


@pytest.fixture(scope="module")
def client(tokenizer):
    counting, model = tokenizer
    app = create_app(HFGenerator(model, counting), counting, "tiny", context_length=1024)
    # Server errors come back as 500 responses (what a client sees), not as exceptions here.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def complete(client, **fields) -> dict:
    reply = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 6, "temperature": 0, **fields})
    assert reply.status_code == 200, reply.text
    return reply.json()


def chat(client, **fields) -> dict:
    body = {"messages": [{"role": "user", "content": "12+34="}], "max_tokens": 6, "temperature": 0, **fields}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


# Fields OpenAI defines that the server does not implement, at values that would change the
# output: each was answered 200 with ordinary output before.
UNIMPLEMENTED = {
    "response_format json": ("chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
    "tools": ("chat/completions", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    "tool_choice": ("chat/completions", {"tool_choice": "required"}, "tool_choice"),
    "best_of on chat": ("chat/completions", {"best_of": 2}, "best_of"),
    "top_logprobs on completions": ("completions", {"top_logprobs": 2}, "top_logprobs"),
    "suffix": ("completions", {"suffix": "!"}, "suffix"),
    "an unknown field": ("completions", {"frobnicate": 1}, "frobnicate"),
    "a message's name": ("chat/completions", {"messages": [{"role": "user", "content": "1+1=", "name": "bob"}]}, "name"),
    "skip_special_tokens false": ("completions", {"skip_special_tokens": False}, "skip_special_tokens"),
    "stream_options without stream": ("completions", {"stream_options": {"include_usage": True}}, "stream_options"),
    "an unknown stream option": ("completions", {"stream": True, "stream_options": {"continuous": True}}, "continuous"),
    "top_logprobs without logprobs": ("chat/completions", {"top_logprobs": 2}, "top_logprobs"),
    "top_logprobs over 20": ("chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    "best_of below n": ("completions", {"best_of": 1, "n": 2}, "best_of"),
    "logit_bias outside the vocabulary": ("completions", {"logit_bias": {"100000": 5}}, "logit_bias"),
    "logit_bias not a token id": ("completions", {"logit_bias": {"a": 5}}, "logit_bias"),
    "logit_bias over 100": ("completions", {"logit_bias": {"5": 101}}, "logit_bias"),
}


@pytest.mark.parametrize("case", list(UNIMPLEMENTED))
def test_a_field_the_server_does_not_implement_is_400_naming_it(client, case):
    endpoint, fields, name = UNIMPLEMENTED[case]
    base = {"prompt": PROMPT} if endpoint == "completions" else {"messages": [{"role": "user", "content": "1+1="}]}
    reply = client.post(f"/v1/{endpoint}", json={**base, "max_tokens": 2, **fields})
    assert reply.status_code == 400, reply.text
    assert name in reply.json()["error"]["message"]


def test_fields_at_their_neutral_value_are_accepted(client):
    """The value that means "off" changes nothing, so it is accepted (SDKs and proxies send them)."""
    fields = {"response_format": {"type": "text"}, "tools": [], "tool_choice": "none", "user": "u1", "presence_penalty": 0, "frequency_penalty": 0.0}
    plain = chat(client)
    assert chat(client, **fields)["choices"][0]["message"] == plain["choices"][0]["message"]
    # A message sent back as the SDK dumps it, with its null fields.
    echoed = [{"role": "user", "content": "12+34=", "name": None, "tool_calls": None}]
    assert chat(client, messages=echoed)["choices"][0]["message"] == plain["choices"][0]["message"]
    # A field sent as null is a field not sent.
    assert complete(client, frobnicate=None, suffix=None)["choices"][0]["text"] == complete(client)["choices"][0]["text"]


def test_logit_bias_bans_and_forces_tokens(client, tokenizer):
    counting, _ = tokenizer
    greedy = complete(client, logprobs=0, return_tokens_as_token_ids=True)["choices"][0]["logprobs"]["tokens"]
    first = int(greedy[0].split(":")[1])
    banned = complete(client, logprobs=0, return_tokens_as_token_ids=True, logit_bias={str(first): -100})
    assert int(banned["choices"][0]["logprobs"]["tokens"][0].split(":")[1]) != first
    forced_id = counting.encode("7", add_special_tokens=False)[0]
    forced = complete(client, logit_bias={str(forced_id): 100})
    assert forced["choices"][0]["text"] == "7" * 6


def test_chat_top_logprobs_lists_the_most_likely_tokens(client):
    reply = chat(client, logprobs=True, top_logprobs=3)
    content = reply["choices"][0]["logprobs"]["content"]
    assert len(content) == reply["usage"]["completion_tokens"]
    for entry in content:
        alternatives = entry["top_logprobs"]
        values = [a["logprob"] for a in alternatives]
        assert len(alternatives) == 3 and values == sorted(values, reverse=True)
        # Greedy: the chosen token is the most likely one, with the same log-prob.
        assert alternatives[0]["token"] == entry["token"] and alternatives[0]["logprob"] == pytest.approx(entry["logprob"])
        assert sum(math.exp(v) for v in values) <= 1 + 1e-6
        assert entry["bytes"] == list(entry["token"].encode("utf-8"))


def test_completions_logprobs_n_gives_n_alternatives_and_the_sampled_token(client):
    reply = complete(client, logprobs=3, temperature=1.0, seed=4, max_tokens=8)
    logprobs = reply["choices"][0]["logprobs"]
    for token, value, alternatives in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]):
        assert 3 <= len(alternatives) <= 4 and alternatives[token] == pytest.approx(value)
        ranked = sorted(alternatives.values(), reverse=True)
        assert value <= ranked[0] + 1e-6


def test_best_of_returns_the_samples_with_the_highest_log_prob_per_token(client):
    sampled = {"temperature": 1.0, "seed": 11, "max_tokens": 10, "logprobs": 0}
    everything = complete(client, n=5, **sampled)
    best = complete(client, n=2, best_of=5, **sampled)

    def mean_logprob(choice: dict) -> float:
        values = choice["logprobs"]["token_logprobs"]
        return sum(values) / len(values)

    ranked = sorted(everything["choices"], key=mean_logprob, reverse=True)
    assert [c["text"] for c in best["choices"]] == [c["text"] for c in ranked[:2]]
    assert [c["index"] for c in best["choices"]] == [0, 1]
    # Every sample generated is counted, as OpenAI bills best_of.
    assert best["usage"]["completion_tokens"] == everything["usage"]["completion_tokens"]


def test_a_prompt_too_long_for_the_context_is_refused_by_its_size_before_tokenizing(client, tokenizer):
    """A 5 MB prompt was tokenized (about 35 s on the shared machine) before its 400."""
    counting, _ = tokenizer
    before = counting.calls
    huge = "1+2=" * 1_250_000
    reply = client.post("/v1/completions", json={"prompt": huge, "max_tokens": 2})
    assert reply.status_code == 400 and "5000000 bytes" in reply.json()["error"]["message"]
    reply = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": huge}], "max_tokens": 2})
    assert reply.status_code == 400 and "5000000 bytes" in reply.json()["error"]["message"]
    assert counting.calls == before
