"""``slowthink serve`` in a subprocess on a free localhost port, used by the OpenAI backend and
by ``slowthink eval --backend openai``; the server must give what the in-process generator gives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.data.problems import write_problems
from slowthink.modeling import load_model_and_tokenizer
from slowthink.rollout.generator import Completion, SamplingParams
from slowthink.rollout.hf import HFGenerator
from slowthink.rollout.openai_backend import OpenAIBackendError, OpenAIGenerator
from slowthink.serve import BatchingWorker
from slowthink.tiny import ArithmeticTask

READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """Base URL of a running ``slowthink serve``; the process is always killed at the end."""
    port = free_port()
    env = {**os.environ, "SLOWTHINK_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from slowthink.cli import app; app()", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"slowthink serve exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"slowthink serve not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
        completions = remote.generate([tokenizer.encode("<|user|>5+5=<|assistant|>")],
                                      SamplingParams(temperature=1.0, max_new_tokens=5, n=3, seed=1))
    assert len(completions) == 3 and all(1 <= len(c.token_ids) <= 5 for c in completions)
    chat = httpx.post(f"{server}/chat/completions", json={
        "model": "tiny", "messages": [{"role": "user", "content": "12+34="}], "max_tokens": 6, "temperature": 0})
    plain = httpx.post(f"{server}/completions", json={
        "model": "tiny", "prompt": "<|user|>12+34=<|assistant|>", "max_tokens": 6, "temperature": 0})
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
    remote = runner.invoke(app, [*common, "--backend", "openai", "--base-url", server, "--concurrency", "2",
                                 "--out", str(tmp_path / "remote")], catch_exceptions=False)
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")], catch_exceptions=False)
    assert local.exit_code == 0, local.output

    def samples(folder: str) -> list[dict]:
        lines = (tmp_path / folder / "sums" / "samples.jsonl").read_text().splitlines()
        return sorted((json.loads(line) for line in lines), key=lambda r: r["problem_id"])

    over_http, in_process = samples("remote"), samples("local")
    assert len(over_http) == 3
    assert [(r["problem_id"], r["response"], r["num_tokens"]) for r in over_http] == \
        [(r["problem_id"], r["response"], r["num_tokens"]) for r in in_process]
    assert json.loads((tmp_path / "remote" / "run.json").read_text())["backend"] == "openai"


class EchoGenerator:
    """Answers each prompt with its own first id; the first call waits so later jobs queue up."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def generate(self, prompt_ids, params):
        if not self.calls:
            self.release.wait(timeout=5)
        self.calls.append(len(prompt_ids))
        return [Completion(i, [ids[0]], [0.0], str(ids[0]), "stop") for i, ids in enumerate(prompt_ids)
                for _ in range(params.n)]


def test_batching_worker_merges_waiting_jobs_and_returns_each_its_own():
    generator = EchoGenerator()
    worker = BatchingWorker(generator)
    params = SamplingParams(n=2)
    try:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(worker.submit, [[1]], params)
            time.sleep(0.2)  # the worker is now inside the first generate call
            later = [pool.submit(worker.submit, [[10 * k], [10 * k + 1]], params) for k in range(1, 4)]
            time.sleep(0.2)
            generator.release.set()
            results = [first.result(timeout=5)] + [f.result(timeout=5) for f in later]
    finally:
        worker.close()
    # The three jobs that waited together ran as one call of 6 prompts.
    assert generator.calls == [1, 6]
    assert [c.text for c in results[0]] == ["1", "1"]
    for k, completions in enumerate(results[1:], start=1):
        assert [(c.prompt_index, c.text) for c in completions] == [
            (0, str(10 * k)), (0, str(10 * k)), (1, str(10 * k + 1)), (1, str(10 * k + 1))]
