"""A remote reward: an HTTP endpoint that scores a batch (OpenRLHF's ``--remote_rm_url``).

``reward.functions: {judge: "http://127.0.0.1:8000/score"}`` POSTs the batch as the same
keyword lists a local function gets (``rewards/functions.py``)::

    {"prompts": [...], "completions": [...], "answer": [...], "id": [...], ...}

and reads the scores back as a JSON list, or an object with a ``rewards`` (or ``scores``)
list: one float, or null for "not applicable", per completion. Each request has
``reward.function_timeout_s``; connection errors, timeouts and HTTP 408, 429 and 5xx are
retried ``reward.remote_retries`` times with a doubling pause, then the step fails naming
the URL. The standard library's ``urllib`` does the request (no client to install).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class RemoteRewardError(RuntimeError):
    """The endpoint failed or answered something unusable; ``RewardFunction`` adds the name."""


RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
FIRST_PAUSE_S = 0.5


class RemoteReward:
    """Callable with TRL's keyword lists, answering the endpoint's scores."""

    def __init__(self, url: str, timeout_s: float, retries: int):
        self.url, self.timeout_s, self.retries = url, timeout_s, retries

    def __call__(self, **batch: Any) -> Any:
        body = json.dumps(batch, default=str).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(FIRST_PAUSE_S * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return scores_of(json.loads(response.read().decode("utf-8")), self.url)
            except urllib.error.HTTPError as exc:
                if exc.code not in RETRY_STATUSES:
                    raise RemoteRewardError(f"remote reward {self.url} answered HTTP {exc.code}: {exc.read()[:200]!r}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = str(getattr(exc, "reason", exc)) or type(exc).__name__
            except json.JSONDecodeError as exc:
                raise RemoteRewardError(f"remote reward {self.url} answered with invalid JSON ({exc.msg})") from None
        raise RemoteRewardError(f"remote reward {self.url} failed after {self.retries + 1} tries ({last}; timeout {self.timeout_s:g}s per try)")


def scores_of(payload: Any, url: str) -> Any:
    """The list of scores in an endpoint's answer: a bare list, or under ``rewards``/``scores``."""
    if isinstance(payload, dict):
        for key in ("rewards", "scores"):
            if key in payload:
                return payload[key]
        raise RemoteRewardError(f"remote reward {url} answered an object without 'rewards' or 'scores' (keys: {', '.join(payload)})")
    return payload
