"""``slowthink serve`` in a subprocess on a free localhost port, used by the OpenAI backend and
by ``slowthink eval --backend openai``; the server must give what the in-process generator gives."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import running_server
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.data.problems import write_problems
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.models.modeling import load_model_and_tokenizer
from slowthink.rollout.generator import SamplingParams
from slowthink.rollout.hf import HFGenerator
from slowthink.rollout.openai_backend import OpenAIBackendError, OpenAIGenerator
from slowthink.serve.app import create_app
from slowthink.serve.scheduler import Scheduler

# Starting the server process costs ~10-17 s: the whole module is out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    """Base URL of a running ``slowthink serve``; the process is always killed at the end."""
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def local():
    """The same tiny model in this process, to compare with what the server returns."""
    model, tokenizer = load_model_and_tokenizer("tiny")
    model.eval()
    return HFGenerator(model, tokenizer), tokenizer


def test_models_lists_the_served_model(server):
    listing = httpx.get(f"{server}/models").json()
    assert [m["id"] for m in listing["data"]] == ["tiny"] and listing["data"][0]["max_model_len"] == 1024


def test_backend_over_http_matches_the_local_generator(server, local):
    hf, tokenizer = local
    prompts = [tokenizer.encode("<|user|>12+34=<|assistant|>"), tokenizer.encode("<|user|>7+8<|assistant|>")]
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    with OpenAIGenerator(server, concurrency=2) as remote:
        over_http = remote.generate(prompts, params)
    in_process = hf.generate(prompts, params)
    assert [c.token_ids for c in over_http] == [c.token_ids for c in in_process]
    assert [c.text for c in over_http] == [c.text for c in in_process]
    assert [c.finish_reason for c in over_http] == [c.finish_reason for c in in_process]
    for a, b in zip(over_http, in_process):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_stop_string_ends_generation_and_stays_in_the_text(server, local):
    _, tokenizer = local
    prompt = tokenizer.encode("<|user|>1+1=<|assistant|>")
    with OpenAIGenerator(server) as remote:
        (free,) = remote.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=8))
        assert len(free.text) >= 3, free.text
        stop = free.text[2]  # a character the greedy continuation reaches by its third token
        (stopped,) = remote.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=8, stop=(stop,)))
    cut = free.text.index(stop) + 1
    assert stopped.text == free.text[:cut] and stopped.finish_reason == "stop" and stopped.stop_string == stop


def test_sampling_n_and_chat_endpoint(server, local):
    _, tokenizer = local
    with OpenAIGenerator(server) as remote:
        completions = remote.generate([tokenizer.encode("<|user|>5+5=<|assistant|>")], SamplingParams(temperature=1.0, max_new_tokens=5, n=3, seed=1))
    assert len(completions) == 3 and all(1 <= len(c.token_ids) <= 5 for c in completions)
    chat = httpx.post(
        f"{server}/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "12+34="}], "max_tokens": 6, "temperature": 0}
    )
    plain = httpx.post(f"{server}/completions", json={"model": "tiny", "prompt": "<|user|>12+34=<|assistant|>", "max_tokens": 6, "temperature": 0})
    assert chat.status_code == plain.status_code == 200
    assert chat.json()["choices"][0]["message"]["content"] == plain.json()["choices"][0]["text"]


def test_requests_the_server_refuses_come_back_as_errors(server, local):
    _, tokenizer = local
    with OpenAIGenerator(server, max_retries=0) as remote, pytest.raises(OpenAIBackendError, match="maximum context length is 1024"):
        remote.generate([tokenizer.encode("1+1=")], SamplingParams(max_new_tokens=5000))
    wrong_model = httpx.post(f"{server}/completions", json={"model": "gpt-4", "prompt": "1"})
    assert wrong_model.status_code == 404 and "serves 'tiny'" in wrong_model.json()["error"]["message"]


def test_eval_over_openai_backend_matches_hf_backend(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=2).problems(3, seed=0, heldout=True))
    common = ["eval", "--data", str(data), "--max-tokens", "6", "--checker", "exact"]
    runner = CliRunner()
    remote = runner.invoke(
        app, [*common, "--backend", "openai", "--base-url", server, "--concurrency", "2", "--out", str(tmp_path / "remote")], catch_exceptions=False
    )
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")], catch_exceptions=False)
    assert local.exit_code == 0, local.output

    def samples(folder: str) -> list[dict]:
        lines = (tmp_path / folder / "sums" / "samples.jsonl").read_text().splitlines()
        return sorted((json.loads(line) for line in lines), key=lambda r: r["problem_id"])

    over_http, in_process = samples("remote"), samples("local")
    assert len(over_http) == 3
    assert [(r["problem_id"], r["response"], r["num_tokens"]) for r in over_http] == [
        (r["problem_id"], r["response"], r["num_tokens"]) for r in in_process
    ]
    assert json.loads((tmp_path / "remote" / "run.json").read_text())["backend"] == "openai"


@pytest.mark.slow
def test_sampled_eval_over_the_server_is_the_same_twice(server, tmp_path, monkeypatch):
    """Two identical sampled evals over ``slowthink serve`` differed in 8 of 16
    samples, because concurrent requests shared one random stream."""
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=2).problems(4, seed=1, heldout=True))
    runner = CliRunner()

    def responses(out: str) -> list[tuple]:
        result = runner.invoke(
            app,
            [
                "eval",
                "--data",
                str(data),
                "--max-tokens",
                "12",
                "--checker",
                "exact",
                "--mode",
                "sampled",
                "--n",
                "4",
                "--temperature",
                "1.0",
                "--backend",
                "openai",
                "--base-url",
                server,
                "--tokenizer",
                "tiny",
                "--concurrency",
                "4",
                "--out",
                str(tmp_path / out),
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / out / "sums" / "samples.jsonl").read_text().splitlines()]
        return sorted((r["problem_id"], r["response"]) for r in rows)

    first, second = responses("first"), responses("second")
    assert len(first) == 16 and first == second


SMALL = {"model": "tiny", "prompt": "<|user|>12+34=<|assistant|>", "max_tokens": 4, "temperature": 0}


def test_seeded_request_gives_the_same_output_alone_and_among_ten(server):
    """Each request samples from its own generator state, so batching with
    others (the same request ten times, and unseeded requests of other lengths) changes nothing."""
    body = {"model": "tiny", "prompt": "<|user|>12+34=<|assistant|>", "max_tokens": 12, "temperature": 1.0, "n": 2, "seed": 5}
    others = [{**body, "prompt": "<|user|>9+999+1=<|assistant|>", "seed": None}, {**body, "prompt": "<|user|>7=<|assistant|>", "seed": 6}]

    def texts(request: dict) -> list[str]:
        reply = httpx.post(f"{server}/completions", json=request, timeout=60)
        assert reply.status_code == 200, reply.text
        return [c["text"] for c in reply.json()["choices"]]

    alone = texts(body)
    assert len(set(alone)) == 2  # the n samples of one request differ from each other
    with ThreadPoolExecutor(13) as pool:
        together = list(pool.map(texts, [body] * 10 + others))
    assert together[:10] == [alone] * 10


RAW_BAD_REQUESTS = {
    "NaN temperature": ("completions", '{"prompt": "1+1=", "temperature": NaN}', "temperature"),
    "infinite top_p": ("completions", '{"prompt": "1+1=", "top_p": Infinity}', "top_p"),
    "seed 2**64": ("completions", '{"prompt": "1+1=", "seed": 18446744073709551616}', "seed"),
    "empty messages": ("chat/completions", '{"messages": []}', "messages"),
    "lone surrogate prompt": ("completions", '{"prompt": "1+\\udcff="}', "prompt"),
    "lone surrogate message": ("chat/completions", '{"messages": [{"role": "user", "content": "\\ud800"}]}', "content"),
    "lone surrogate stop": ("completions", '{"prompt": "1+1=", "stop": ["\\udfff"]}', "stop"),
    "max_tokens 0": ("completions", '{"prompt": "1+1=", "max_tokens": 0}', "max_tokens"),
    "not JSON": ("completions", '{"prompt": ', "JSON"),
    # These three gave 500, which the OpenAI SDK retries.
    "lone surrogate model": ("completions", '{"prompt": "1+1=", "model": "\\udcff"}', "model"),
    "temperature 1e-320": ("completions", '{"prompt": "1+1=", "temperature": 1e-320}', "temperature"),
    "top_p 1e-320": ("chat/completions", '{"messages": [{"role": "user", "content": "1"}], "top_p": 1e-320}', "top_p"),
}


@pytest.mark.parametrize("case", list(RAW_BAD_REQUESTS))
def test_bad_requests_are_400_with_a_message_naming_the_field(server, case):
    """Each of these gave 500 (or a traceback) before."""
    endpoint, raw, field = RAW_BAD_REQUESTS[case]
    reply = httpx.post(f"{server}/{endpoint}", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["error"]["message"]


def test_chat_without_max_tokens_gets_the_context_that_remains_in_process(local):
    """With a 40-token context the completion gets what the prompt leaves."""
    from fastapi.testclient import TestClient

    hf, tokenizer = local
    with TestClient(create_app(hf, tokenizer, "tiny", context_length=40)) as client:
        reply = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "12+34="}], "temperature": 0})
    assert reply.status_code == 200, reply.text
    usage = reply.json()["usage"]
    assert usage["total_tokens"] <= 40
    if reply.json()["choices"][0]["finish_reason"] == "length":
        assert usage["total_tokens"] == 40


@pytest.mark.slow
def test_chat_without_max_tokens_gets_the_context_that_remains(server):
    """The default was a fixed 1024 tokens, past the tiny model's context."""
    reply = httpx.post(
        f"{server}/chat/completions", timeout=120, json={"model": "tiny", "messages": [{"role": "user", "content": "12+34="}], "temperature": 0}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["total_tokens"] <= 1024


@pytest.fixture(scope="module")
def capped_client(local):
    """The app in-process with small per-request caps."""
    from fastapi.testclient import TestClient

    hf, tokenizer = local
    app = create_app(hf, tokenizer, "tiny", context_length=1024, max_sequences=8, max_tokens_limit=32)
    with TestClient(app) as client:
        yield client


def test_requests_over_the_caps_are_400_naming_the_limit(capped_client):
    """Prompts x n and max_tokens are capped per request (one request with
    512 prompts x n=128 held the server for 23 s)."""
    many = capped_client.post("/v1/completions", json={"prompt": ["1+1=", "2+2=", "3+3="], "n": 3, "max_tokens": 2})
    assert many.status_code == 400 and "limit of 8 sequences" in many.json()["error"]["message"]
    long = capped_client.post("/v1/completions", json={"prompt": "1+1=", "max_tokens": 33})
    assert long.status_code == 400 and "limit of 32 tokens" in long.json()["error"]["message"]
    chat = capped_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "1+1="}]})
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] <= 32
    fits = capped_client.post("/v1/completions", json={"prompt": ["1+1=", "2+2="], "n": 4, "max_tokens": 32})
    assert fits.status_code == 200 and len(fits.json()["choices"]) == 8


def test_scheduler_cancels_a_job_and_serves_a_small_one_while_a_big_one_runs(local):
    """Round-robin in chunks: a 4-token job finishes while a long one is still decoding, and a
    cancelled job stops within a chunk and frees its rows."""
    hf, tokenizer = local
    scheduler = Scheduler(hf, batch_size=64, chunk_tokens=4)
    try:
        prompt = tokenizer.encode("<|user|>12+34=<|assistant|>")
        big = scheduler.submit([prompt] * 4, SamplingParams(temperature=1.0, max_new_tokens=600, n=8, seed=0))
        doomed = scheduler.submit([prompt], SamplingParams(temperature=1.0, max_new_tokens=600, n=32, seed=1))
        time.sleep(0.3)
        small = scheduler.submit([prompt], SamplingParams(temperature=0.0, max_new_tokens=4))
        doomed.cancel()
        (completion,) = small.future.result(timeout=30)
        assert len(completion.token_ids) <= 4
        assert not big.future.done()
        deadline = time.monotonic() + 10
        while scheduler.stats()["cancelled_requests"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.stats()["cancelled_requests"] == 1 and doomed.future.cancelled()
        assert scheduler.stats()["active_sequences"] <= 32  # only the big job's rows still decode
        big.cancel()
    finally:
        scheduler.close()


def test_scheduler_matches_the_generator_for_a_greedy_request(local):
    hf, tokenizer = local
    prompts = [tokenizer.encode("<|user|>12+34=<|assistant|>"), tokenizer.encode("<|user|>7+8<|assistant|>")]
    scheduler = Scheduler(hf, batch_size=3, chunk_tokens=2)
    try:
        served = scheduler.submit(prompts, SamplingParams(temperature=0.0, max_new_tokens=9, n=2)).future.result(timeout=30)
    finally:
        scheduler.close()
    direct = hf.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=9, n=2))
    assert [(c.prompt_index, c.token_ids, c.finish_reason) for c in served] == [(c.prompt_index, c.token_ids, c.finish_reason) for c in direct]


@pytest.mark.slow
def test_abandoned_requests_are_cancelled_and_a_small_request_stays_fast(server):
    """Under load: 3 clients ask for n=64 long samples and hang up; a 4-token
    request must not wait for their generations (it waited 55 s before), and the server must
    report the abandoned requests as cancelled. Bounds are generous: the machine is shared."""
    before = httpx.get(f"{server.rsplit('/v1', 1)[0]}/stats").json()
    abandoned = {"model": "tiny", "prompt": "<|user|>12+34+56=<|assistant|>", "max_tokens": 1000, "temperature": 1.0, "n": 64}
    for _ in range(3):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server}/completions", json=abandoned, timeout=httpx.Timeout(0.5, connect=5))
    oversized = httpx.post(f"{server}/completions", timeout=60, json={"model": "tiny", "prompt": ["1+1="] * 512, "n": 128, "max_tokens": 16})
    assert oversized.status_code == 400 and "limit of 256 sequences" in oversized.json()["error"]["message"]
    started = time.monotonic()
    reply = httpx.post(f"{server}/completions", json=SMALL, timeout=60)
    latency = time.monotonic() - started
    assert reply.status_code == 200 and latency < 10.0, latency
    deadline = time.monotonic() + 10
    while True:
        stats = httpx.get(f"{server.rsplit('/v1', 1)[0]}/stats").json()
        if stats["cancelled_requests"] - before["cancelled_requests"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats["cancelled_requests"] - before["cancelled_requests"] == 3
    assert stats["active_sequences"] == 0


class FailsOnEmptyPrompt:
    """The tiny ``HFGenerator``, except that a batch holding the prompt [0] fails to start."""

    def __init__(self, hf):
        self.hf = hf

    def start_batch(self, jobs, params, rngs):
        if any(ids == [0] for _, ids in jobs):
            raise RuntimeError("cannot decode this batch")
        return self.hf.start_batch(jobs, params, rngs)


def test_a_failing_batch_fails_its_requests_only_and_the_scheduler_goes_on(local):
    hf, tokenizer = local
    scheduler = Scheduler(FailsOnEmptyPrompt(hf), batch_size=4, chunk_tokens=2)
    try:
        prompt = tokenizer.encode("<|user|>1+1=<|assistant|>")
        params = SamplingParams(temperature=0.0, max_new_tokens=3)
        bad = scheduler.submit([prompt, [0]], params)
        with pytest.raises(RuntimeError, match="cannot decode"):
            bad.future.result(timeout=30)
        (good,) = scheduler.submit([prompt], params).future.result(timeout=30)
        assert 1 <= len(good.token_ids) <= 3
        assert scheduler.stats()["failed_requests"] == 1 and scheduler.stats()["active_sequences"] == 0
    finally:
        scheduler.close()
