"""The remote reward against a real HTTP server on 127.0.0.1, started by the test: the batch
goes as JSON, scores come back; failures are retried, then fail the step naming the URL."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slowthink.config import load_config
from slowthink.rewards.functions import RewardFunctionError, RewardRow
from slowthink.rewards.reward import RewardConfig, RewardModel


class Judge(BaseHTTPRequestHandler):
    """Scores 1.0 when a completion contains the row's answer; fails the first ``fail_first`` requests."""

    received: list[dict] = []
    fail_first = 0
    delay_s = 0.0

    def do_POST(self):  # noqa: N802 (http.server's name)
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(batch)
        if len(type(self).received) <= type(self).fail_first:
            self.send_response(503)
            self.end_headers()
            return
        time.sleep(type(self).delay_s)
        scores = [1.0 if a in c else 0.0 for c, a in zip(batch["completions"], batch["answer"])]
        body = json.dumps({"rewards": scores}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge():
    Judge.received, Judge.fail_first, Judge.delay_s = [], 0, 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/score"
    server.shutdown()
    server.server_close()


def remote_model(url: str, *extra: str) -> RewardModel:
    return RewardModel(load_config(RewardConfig, None, ["checker=exact", f"functions={{judge: '{url}'}}", "weights={judge: 2.0}", *extra]))


ROWS = [
    RewardRow("p0", "what is 1+1?", {"answer": "2", "id": "p0", "topic": "sums"}),
    RewardRow("p1", "3*3?", {"answer": "9", "id": "p1", "topic": None}),
]


def test_the_batch_goes_as_json_and_the_scores_come_back(judge):
    batch = remote_model(judge).score(["2", "9"], ["it is 2", "it is 8"], [3, 3], 10, ROWS)
    assert batch.components["judge"] == [1.0, 0.0] and batch.total == [2.0, 0.0]
    sent = Judge.received[0]
    assert sent["prompts"] == ["what is 1+1?", "3*3?"] and sent["completions"] == ["it is 2", "it is 8"]
    assert sent["topic"] == ["sums", None] and sent["id"] == ["p0", "p1"]


def test_server_errors_are_retried(judge):
    Judge.fail_first = 2
    batch = remote_model(judge, "remote_retries=2").score(["2"], ["2"], [1], 10, ROWS[:1])
    assert batch.components["judge"] == [1.0] and len(Judge.received) == 3


def test_retries_exhausted_fail_the_step_naming_the_url(judge):
    Judge.fail_first = 10
    with pytest.raises(RewardFunctionError, match=rf"reward function 'judge'.*{judge} failed after 2 tries \(HTTP 503"):
        remote_model(judge, "remote_retries=1").score(["2"], ["2"], [1], 10, ROWS[:1])


def test_a_slow_server_times_out(judge):
    Judge.delay_s = 3.0
    with pytest.raises(RewardFunctionError, match=r"failed after 1 tries .*timeout 0.5s per try"):
        remote_model(judge, "remote_retries=0", "function_timeout_s=0.5").score(["2"], ["2"], [1], 10, ROWS[:1])


def test_an_unreachable_server_fails_after_its_retries():
    with pytest.raises(RewardFunctionError, match="http://127.0.0.1:9/score failed after 2 tries"):
        remote_model("http://127.0.0.1:9/score", "remote_retries=1").score(["2"], ["2"], [1], 10, ROWS[:1])
