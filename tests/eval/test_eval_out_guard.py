"""``slowthink eval``: one process per ``--out`` and no silent tokenizer for
``--backend openai``."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import ConfigError
from slowthink.data.problems import write_problems
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.durable import exclusive_lock
from slowthink.recipes.evaluate import EvalConfig


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


def test_a_second_eval_on_the_same_out_fails_at_once_naming_the_holder(tmp_path):
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=1).problems(2, seed=1, heldout=True))
    out = tmp_path / "eval"
    common = ["--data", str(data), "--max-tokens", "3", "--checker", "exact", "--out", str(out)]
    # This test process plays the first eval, still running.
    with exclusive_lock(out / ".lock", f"eval output {out}"):
        result = invoke(*common)
    assert result.exit_code == 2
    assert f"PID {os.getpid()}" in result.output and str(out) in result.output
    assert not (out / "sums" / "samples.jsonl").exists()
    # Once the first one is done, the same command runs (and a rerun adds no duplicate rows).
    assert invoke(*common).exit_code == 0
    assert invoke(*common).exit_code == 0
    assert len((out / "sums" / "samples.jsonl").read_text().splitlines()) == 2


def openai_cfg(**kwargs) -> EvalConfig:
    return EvalConfig(data={"file": "x.jsonl"}, backend={"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}, **kwargs)


def test_openai_tokenizer_comes_from_the_options_or_a_local_served_model(tmp_path):
    from slowthink.recipes.evaluate import openai_tokenizer_name

    asked = []

    def served() -> str:
        asked.append(1)
        return str(tmp_path)

    assert openai_tokenizer_name(openai_cfg(tokenizer="tok"), served) == "tok"
    assert openai_tokenizer_name(openai_cfg(model="m"), served) == "m"
    assert asked == []
    # Neither given: the served model's name, when it is a local directory (or the embedded tiny).
    assert openai_tokenizer_name(openai_cfg(), served) == str(tmp_path)
    assert openai_tokenizer_name(openai_cfg(), lambda: "tiny") == "tiny"
    with pytest.raises(ConfigError, match="needs a tokenizer.*'Org/Some-Model-7B'.*--tokenizer"):
        openai_tokenizer_name(openai_cfg(), lambda: "Org/Some-Model-7B")


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"object": "list", "data": [{"id": "Org/Some-Model-7B", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_openai_backend_without_a_tokenizer_exits_2_naming_the_served_model(tmp_path):
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=1).problems(1, seed=1, heldout=True))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = invoke("--data", str(data), "--backend", "openai", "--base-url", url, "--out", str(tmp_path / "o"))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 2
    assert "Org/Some-Model-7B" in result.output and "--tokenizer" in result.output
