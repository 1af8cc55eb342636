"""``OpenAIGenerator``: the ``Generator`` protocol over any OpenAI-compatible ``/v1/completions``.

Works against vLLM, SGLang and ``slowthink serve``. Prompts go out as token-id lists
(vLLM and our server accept them), so the exact prompt the runner built is what the model
sees. Each prompt is one request with ``n`` choices; requests run on a thread pool of
``concurrency`` workers over one shared ``httpx.Client``.

Token ids of the completion: we ask for ``logprobs=1`` and ``return_tokens_as_token_ids``
(a vLLM extension our server implements), so each token comes back as ``"token_id:N"``
with its log-prob. A server that ignores that flag returns token strings; we then
re-encode the completion text with ``tokenizer`` (documented fallback: the ids may differ
from the sampled ones where a tokenizer is not round-trip stable, and log-probs are taken
from the server when their count matches, else 0.0). Without ids and without a tokenizer
the call fails with an error that says so.

Retries: connection errors, timeouts, HTTP 408, 429, 500 and 502-504 are retried with exponential
backoff; other 4xx fail at once (a bad request does not get better). After the last
attempt the error names the URL, the status and the server's message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

import httpx

from slowthink.rollout.generator import Completion, FinishReason, Generator, SamplingParams

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "eos": "stop", "length": "length"}
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class OpenAIBackendError(RuntimeError):
    """A request that failed for good; the message names the URL and the last status."""


class OpenAIGenerator(Generator):
    """Sample from a remote OpenAI-compatible server (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        tokenizer: Any = None,
        transport: httpx.BaseTransport | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.tokenizer = tokenizer
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Connect fast or fail; a long reasoning completion may take minutes to read.
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        # ``transport`` lets tests stand in a scripted server (httpx.MockTransport).
        self._client = httpx.Client(headers=headers, timeout=timeout, limits=limits, transport=transport)
        self._lock = threading.Lock()
        self._model = model

    # ------------------------------------------------------------------ protocol

    def generate(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """``params.n`` completions per prompt, prompt-major, prompts sent as token ids."""
        results: dict[int, list[Completion]] = dict(self.generate_stream([list(p) for p in prompt_ids], params))
        return [c for index in range(len(prompt_ids)) for c in results[index]]

    def generate_text(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """As ``generate``, with text prompts (for servers that take no token ids)."""
        results: dict[int, list[Completion]] = dict(self.generate_stream(list(prompts), params))
        return [c for index in range(len(prompts)) for c in results[index]]

    def update_weights(self, model: Any) -> None:
        raise OpenAIBackendError(
            f"cannot load weights into the remote server at {self.base_url}: an OpenAI-compatible endpoint "
            "has no weight-update API; use the 'hf' or 'vllm' backend for RL rollouts, or restart the server "
            "on a saved checkpoint"
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    @property
    def model(self) -> str:
        """The served model name: as given, else the first id listed by ``/v1/models``."""
        with self._lock:
            if self._model is None:
                listing = self._request("GET", f"{self.base_url}/models", None)
                models = listing.get("data") or []
                if not models:
                    raise OpenAIBackendError(f"{self.base_url}/models lists no model; pass the model name")
                self._model = str(models[0]["id"])
            return self._model

    def list_models(self) -> dict[str, Any]:
        """The server's ``GET /v1/models`` reply (eval records the served model's card)."""
        return self._request("GET", f"{self.base_url}/models", None)

    def generate_stream(self, prompts: Sequence[Sequence[int] | str], params: SamplingParams) -> Iterator[tuple[int, list[Completion]]]:
        """Yield ``(prompt index, its n completions)`` as requests finish (any order).

        The eval runner writes each as it arrives, so a kill loses only requests in flight.
        """
        model = self.model
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai")
        pending: dict[Future, int] = {}
        queue = iter(enumerate(prompts))
        try:
            # Keep at most `concurrency` requests in flight, so stopping early wastes little.
            for index, prompt in queue:
                pending[pool.submit(self._complete, model, prompt, index, params)] = index
                if len(pending) >= self.concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
                    following = next(queue, None)
                    if following is not None:
                        pending[pool.submit(self._complete, model, following[1], following[0], params)] = following[0]
        finally:
            # A consumer that stops (or a failed request) does not wait for the other requests.
            pool.shutdown(wait=False, cancel_futures=True)

    def request_body(self, model: str, prompt: Sequence[int] | str, params: SamplingParams) -> dict[str, Any]:
        """The JSON body of one ``/v1/completions`` request (public for tests and debugging)."""
        body: dict[str, Any] = {
            "model": model,
            "prompt": prompt if isinstance(prompt, str) else list(prompt),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
            "logprobs": 1,
            # vLLM extensions (ignored elsewhere): ids as "token_id:N", and keep the stop
            # string in the text as our Completion contract says.
            "return_tokens_as_token_ids": True,
            "include_stop_str_in_output": True,
            "skip_special_tokens": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _complete(self, model: str, prompt: Sequence[int] | str, index: int, params: SamplingParams) -> list[Completion]:
        if params.seeds is not None:
            # One request per prompt: its first completion's seed seeds the request, so a
            # prompt's samples do not depend on the other prompts of the call.
            params = replace(params, seed=params.seeds[index * params.n], seeds=None)
        reply = self._request("POST", f"{self.base_url}/completions", self.request_body(model, prompt, params))
        choices = sorted(reply.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise OpenAIBackendError(f"{self.base_url}/completions returned {len(choices)} choices for n={params.n} (prompt {index})")
        return [self._to_completion(choice, index) for choice in choices]

    def _request(self, method: str, url: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One HTTP call with retries on transient failures; the last failure raises for people."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code not in _RETRY_STATUS:
                raise OpenAIBackendError(f"{method} {url} failed: {last}")
        raise OpenAIBackendError(f"{method} {url} failed after {self.max_retries + 1} attempt(s); last error: {last}")

    # ------------------------------------------------------------------ parsing

    def _to_completion(self, choice: dict[str, Any], index: int) -> Completion:
        text = choice.get("text") or ""
        reason = choice.get("finish_reason")
        if reason not in _FINISH_REASONS:
            raise OpenAIBackendError(
                f"{self.base_url}/completions: unexpected finish_reason {reason!r} for prompt {index} (expected 'stop' or 'length')"
            )
        token_ids, logprobs = self._tokens(choice.get("logprobs"), text)
        stop_reason = choice.get("stop_reason")
        return Completion(
            prompt_index=index,
            token_ids=token_ids,
            logprobs=logprobs,
            text=text,
            finish_reason=_FINISH_REASONS[reason],
            stop_string=stop_reason if isinstance(stop_reason, str) else None,
        )

    def _tokens(self, logprobs: dict[str, Any] | None, text: str) -> tuple[list[int], list[float]]:
        """(token ids, log-probs): from ``token_id:N`` strings when present, else re-encoded text."""
        tokens = (logprobs or {}).get("tokens") or []
        if not text and not tokens:
            return [], []
        values = [float(v) if v is not None else 0.0 for v in (logprobs or {}).get("token_logprobs") or []]
        if tokens and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            return [int(t.split(":", 1)[1]) for t in tokens], values or [0.0] * len(tokens)
        if self.tokenizer is None:
            raise OpenAIBackendError(
                f"{self.base_url} returned completion text without token ids (no 'return_tokens_as_token_ids' "
                "support); pass a tokenizer to OpenAIGenerator to re-encode the text"
            )
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        return ids, values if len(values) == len(ids) else [0.0] * len(ids)
