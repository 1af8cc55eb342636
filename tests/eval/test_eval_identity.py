"""Eval resume knows which model drew its samples (new weights at the same path, another
served model), and samples of edited or deleted problems leave ``samples.jsonl``."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from slowthink.cli import app
from slowthink.config import ConfigError
from slowthink.data.problems import Problem, write_problems
from slowthink.data.tiny_task import ArithmeticTask
from slowthink.eval import identity
from slowthink.eval.runner import Decoding, SampleStore, run_samples
from slowthink.models.tiny import save_tiny
from slowthink.recipes.evaluate import EvalConfig, check_resume, current_identity
from slowthink.rewards.verdict import ExactMatchChecker
from tests.eval.test_eval_resume import CharTokenizer, SeedEcho


def test_fingerprint_follows_the_contents_not_the_place(tmp_path, monkeypatch):
    monkeypatch.setattr(identity, "FULL_HASH_BYTES", 1024)  # the shard below is "large": sampled
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 2048)
    first = identity.files_fingerprint(model)
    shutil.copytree(model, tmp_path / "copy")
    assert identity.files_fingerprint(tmp_path / "copy") == first
    # New weights of the same size at the same path (a retrained checkpoint): another identity.
    (model / "model.safetensors").write_bytes(bytes(reversed(range(256))) * 2048)
    assert identity.files_fingerprint(model) != first
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 2048)
    (model / "tokenizer.json").write_text("{}")
    assert identity.files_fingerprint(model) != first


def invoke(*args: str):
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


@pytest.mark.slow  # two tiny-model evals
def test_new_weights_at_the_same_path_are_not_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOWTHINK_TORCH_THREADS", "1")
    data = tmp_path / "sums.jsonl"
    write_problems(data, ArithmeticTask(num_operands=2, digits=1).problems(2, seed=1, heldout=True))
    model = save_tiny(tmp_path / "model", seed=0)
    common = ["--model", str(model), "--data", str(data), "--max-tokens", "4", "--checker", "exact", "--no-progress"]
    assert invoke(*common, "--out", str(tmp_path / "a")).exit_code == 0
    again = invoke(*common, "--out", str(tmp_path / "a"))
    assert again.exit_code == 0 and "0 to generate" in again.output
    # Another checkpoint written where the first was (as `slowthink demo` run again does).
    save_tiny(model, seed=1)
    result = invoke(*common, "--out", str(tmp_path / "a"))
    assert result.exit_code == 2
    assert "holds samples of another model" in result.output and "Use another --out" in result.output
    assert invoke(*common, "--out", str(tmp_path / "b")).exit_code == 0


def test_a_folder_from_before_identities_is_refused(tmp_path):
    cfg = EvalConfig(data={"file": "x.jsonl"})
    (tmp_path / "run.json").write_text(json.dumps({"model": "tiny", "template": "chat"}))
    with pytest.raises(ConfigError, match="before eval recorded which model drew them"):
        check_resume(tmp_path, cfg, cfg.decoding(), {"model": {"name": "tiny"}})


class Models(BaseHTTPRequestHandler):
    card: dict = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"object": "list", "data": [{**Models.card, "created": 1 + threading.get_ident() % 7}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_openai_backend_records_the_served_model_and_refuses_another(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = EvalConfig(
            data={"file": "x.jsonl"}, backend={"kind": "openai", "base_url": f"http://127.0.0.1:{server.server_address[1]}"}, model="tiny"
        )
        Models.card = {"id": "ckpt-100", "object": "model", "owned_by": "slowthink", "max_model_len": 512}
        check_resume(tmp_path, cfg, cfg.decoding(), current_identity(cfg))
        recorded = json.loads((tmp_path / "run.json").read_text())["model_identity"]
        assert recorded["served"]["id"] == "ckpt-100" and "created" not in recorded["served"]
        # The same model again (the card's time field changes): resumed.
        check_resume(tmp_path, cfg, cfg.decoding(), current_identity(cfg))
        # Another checkpoint served by the same server: refused, naming both.
        Models.card = {**Models.card, "id": "ckpt-200"}
        with pytest.raises(ConfigError, match="another model.*ckpt-100.*ckpt-200"):
            check_resume(tmp_path, cfg, cfg.decoding(), current_identity(cfg))
        # A name the server does not serve is the user's to fix.
        with pytest.raises(ConfigError, match="does not serve 'other'"):
            current_identity(cfg.model_copy(update={"backend": cfg.backend.model_copy(update={"served_model_name": "other"})}))
    finally:
        server.shutdown()
        server.server_close()


def test_served_local_directory_adds_its_files(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"1")
    before = identity.served_identity({"id": str(tmp_path), "created": 1}, None)
    (tmp_path / "w.bin").write_bytes(b"2")
    assert identity.served_identity({"id": str(tmp_path), "created": 2}, None) != before


def test_samples_of_edited_and_deleted_problems_are_removed(tmp_path):
    path = tmp_path / "samples.jsonl"
    problems = [Problem("p1", "abc", "3"), Problem("p2", "hello", "5"), Problem("p3", "xy", "9")]
    decoding = Decoding(n=1, temperature=1.0, top_p=1.0, max_tokens=8)

    def run(batch, known=None):
        store = SampleStore(path)
        try:
            return run_samples(batch, SeedEcho(), CharTokenizer(), ExactMatchChecker(), "plain", decoding, store, known_ids=known)
        finally:
            store.close()

    run(problems)
    # p1 edited, p3 deleted from the benchmark: their old responses go; p2 stays as it was.
    edited = [Problem("p1", "abcd", "4"), problems[1]]
    run(edited)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["problem_id"], r["prompt"]) for r in rows] == [("p2", "hello"), ("p1", "abcd")]
    # A problem left out only by --limit (still in the benchmark's ids) keeps its samples.
    run(problems)
    run(problems[:1], known={"p1", "p2", "p3"})
    assert {json.loads(line)["problem_id"] for line in path.read_text().splitlines()} == {"p1", "p2", "p3"}
