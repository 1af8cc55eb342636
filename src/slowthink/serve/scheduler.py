"""Fair, cancellable decoding for ``slowthink serve``: requests take turns a few tokens at a time.

One thread owns the model (it must never run in two threads at once). It used to run each
batch of requests to the end, so one client asking for 512 prompts x n=128, or clients
that had already hung up, held every other request for minutes. Now:

- **units**: a request's rows (prompts x n) are cut into units, the rows of one prompt, at
  most ``batch_size`` of them; a request has at most ``batch_size`` rows decoding at once,
  so a big request cannot take every slot;
- **cohorts**: waiting units with equal sampling settings are prefilled as one batch, up to
  ``batch_size`` rows (batched decoding is far cheaper per token on CPU);
- **round robin**: each running cohort decodes ``chunk_tokens`` tokens per turn, so a small
  request waits one chunk of each other cohort per chunk of its own, never a whole request;
- **cancellation**: ``Job.cancel`` (the client went away) drops the request's rows from their
  cohorts' KV caches before the next turn, and its waiting units are never started;
- **per-row generators**: row j of prompt i of a request with seed s samples from its own
  ``torch.Generator`` seeded by a hash of (s, i, j). Seeded rows are batched only with rows
  of the same prompt length, because left padding changes float rounding (~1e-7 in the
  logits), so a seeded request gives the same output alone or beside others;
- **logits**: before each token, a cohort's ``logit_bias`` (OpenAI's, the same for all its
  rows: it is part of the cohort key) is added to the ``DecodeBatch``'s next-token logits,
  and the ``top_logprobs`` most likely tokens are recorded for the rows that asked;
- **streaming**: a job's ``listener`` gets its rows' tokens after every turn, and each
  finished row's ``Completion`` before the job's future is resolved.
"""

from __future__ import annotations

import hashlib
import queue
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from slowthink.rollout.generator import Completion, SamplingParams


def row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of one row's generator: a hash, so that consecutive request seeds
    (seed + 1 for the next problem) never share a random stream with this one's next row."""
    digest = hashlib.blake2b(f"{seed}/{prompt_index}/{sample_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# (row of the job, its token ids so far, its Completion once its batch is done, else None).
RowUpdate = tuple[int, list[int], Completion | None]
# Called from the scheduler thread after each turn with the job's rows in that cohort; it
# must return at once (the HTTP handler hands the list to its event loop).
Listener = Callable[[list[RowUpdate]], None]
# Per generated token: the most likely (token id, log-prob) pairs, most likely first.
TopLogprobs = list[list[tuple[int, float]]]


@dataclass(eq=False)
class Job:
    """One request: its rows, their results so far, and a flag its HTTP handler may raise."""

    prompts: list[list[int]]
    params: SamplingParams
    # OpenAI's logit_bias as sorted (token id, bias) pairs: added to the logits of every step.
    logit_bias: tuple[tuple[int, float], ...] = ()
    # How many of the most likely tokens to record per generated token (0: none).
    top_logprobs: int = 0
    listener: Listener | None = None
    future: Future = field(default_factory=Future)
    # Units not started yet: (prompt index, sample indices), each at most batch_size rows.
    waiting: deque = field(default_factory=deque)
    results: dict[int, Completion] = field(default_factory=dict)
    # Row -> its tokens' most likely alternatives (only when top_logprobs > 0).
    top: dict[int, TopLogprobs] = field(default_factory=dict)
    in_flight: int = 0
    cancelled: bool = False
    # Set when decoding failed; the request then answers 500 with it.
    error: Exception | None = None

    def cancel(self) -> None:
        """Give up on this request (its client went away); the scheduler drops its rows."""
        self.cancelled = True

    @property
    def rows(self) -> int:
        return len(self.prompts) * self.params.n


@dataclass(eq=False)
class _Cohort:
    """A batch being decoded; ``owners[r]`` is (job, row number in that job) of batch row r."""

    batch: Any
    owners: list[tuple[Job, int]]
    # The logit_bias as a (V,) tensor, or None; alternatives to record per token.
    bias_V: torch.Tensor | None = None
    top_k: int = 0


class Scheduler:
    """Runs an ``HFGenerator``'s ``start_batch``/``step`` for many requests fairly (see the module)."""

    def __init__(self, generator: Any, batch_size: int = 64, chunk_tokens: int = 8, max_running_sequences: int | None = None):
        # Rows decoding at once, all requests together (KV-cache memory); at least 8 requests' worth.
        max_running_sequences = 8 * batch_size if max_running_sequences is None else max_running_sequences
        if batch_size < 1 or chunk_tokens < 1 or max_running_sequences < batch_size:
            raise ValueError("need batch_size >= 1, chunk_tokens >= 1 and max_running_sequences >= batch_size")
        self.generator = generator
        self.batch_size = batch_size
        self.chunk_tokens = chunk_tokens
        self.max_running_sequences = max_running_sequences
        self._inbox: queue.Queue[Job | None] = queue.Queue()
        self._jobs: list[Job] = []
        self._cohorts: deque[_Cohort] = deque()
        self._counts = {
            "requests": 0,
            "completed_requests": 0,
            "cancelled_requests": 0,
            "failed_requests": 0,
            "cancelled_sequences": 0,
            "generated_tokens": 0,
        }
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="slowthink-serve-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public

    def submit(
        self,
        prompts: list[list[int]],
        params: SamplingParams,
        logit_bias: tuple[tuple[int, float], ...] = (),
        top_logprobs: int = 0,
        listener: Listener | None = None,
    ) -> Job:
        """Queue a request; ``job.future`` gets its completions, prompt-major (as ``generate``),
        and ``job.top`` the alternatives of each row's tokens when ``top_logprobs`` > 0."""
        job = Job([list(p) for p in prompts], params, tuple(logit_bias), top_logprobs, listener)
        for index in range(len(prompts)):
            samples = list(range(params.n))
            for start in range(0, params.n, self.batch_size):
                job.waiting.append((index, samples[start : start + self.batch_size]))
        self._inbox.put(job)
        return job

    def stats(self) -> dict[str, int]:
        """Counters since start, plus what is queued and decoding now."""
        with self._lock:
            counts = dict(self._counts)
            counts["active_requests"] = len(self._jobs) + self._inbox.qsize()
            counts["active_sequences"] = sum(len(c.owners) for c in self._cohorts)
        return counts

    def close(self) -> None:
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        while not self._closed:
            # Block for new work only when nothing is decoding, waiting or left to answer.
            idle = not self._cohorts and not any(job.waiting or job.cancelled or job.error is not None for job in self._jobs)
            if not self._take_new(block=idle):
                return
            self._drop_abandoned()
            self._start_cohorts()
            if self._cohorts:
                with self._lock:
                    cohort = self._cohorts.popleft()
                self._turn(cohort)

    def _take_new(self, block: bool) -> bool:
        """Move submitted jobs into the schedule; False once ``close`` was called."""
        while True:
            try:
                job = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
            except queue.Empty:
                if block and not self._closed:
                    continue
                return not self._closed
            if job is None:
                return False
            with self._lock:
                self._jobs.append(job)
                self._counts["requests"] += 1
            block = False

    def _drop_abandoned(self) -> None:
        """Cancelled and failed jobs leave the schedule; their rows leave their cohorts' caches."""
        gone = [job for job in self._jobs if job.cancelled or job.error is not None]
        if not gone:
            return
        kept_cohorts: deque[_Cohort] = deque()
        dropped_rows = 0
        for cohort in self._cohorts:
            keep = [r for r, (job, _) in enumerate(cohort.owners) if job not in gone]
            dropped_rows += len(cohort.owners) - len(keep)
            if keep and len(keep) < len(cohort.owners):
                cohort.batch.keep_rows(keep)
                cohort.owners = [cohort.owners[r] for r in keep]
            if keep:
                kept_cohorts.append(cohort)
        failed = [job for job in gone if job.error is not None]
        with self._lock:
            self._cohorts = kept_cohorts
            self._jobs = [job for job in self._jobs if job not in gone]
            self._counts["cancelled_sequences"] += dropped_rows
            self._counts["cancelled_requests"] += len(gone) - len(failed)
            self._counts["failed_requests"] += len(failed)
        for job in gone:
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.cancel()

    def _start_cohorts(self) -> None:
        """Prefill waiting units, oldest request first, within the per-request and total row caps."""
        running = sum(len(c.owners) for c in self._cohorts)
        groups: dict[tuple, list[tuple[Job, int, list[int]]]] = {}
        for job in self._jobs:
            while job.waiting and running + len(job.waiting[0][1]) <= self.max_running_sequences:
                index, samples = job.waiting[0]
                if job.in_flight and job.in_flight + len(samples) > self.batch_size:
                    break
                job.waiting.popleft()
                job.in_flight += len(samples)
                running += len(samples)
                groups.setdefault(self._cohort_key(job, index), []).append((job, index, samples))
        for units in groups.values():
            cohort_units: list[tuple[Job, int, list[int]]] = []
            for unit in units:
                if sum(len(u[2]) for u in cohort_units) + len(unit[2]) > self.batch_size:
                    self._start(cohort_units)
                    cohort_units = []
                cohort_units.append(unit)
            self._start(cohort_units)

    @staticmethod
    def _cohort_key(job: Job, index: int) -> tuple:
        params = job.params
        exact = params.seed is not None and params.temperature > 0
        return (replace(params, seed=None, n=1), len(job.prompts[index]) if exact else None, job.logit_bias)

    def _start(self, units: list[tuple[Job, int, list[int]]]) -> None:
        rows, owners, rngs = [], [], []
        for job, index, samples in units:
            for sample in samples:
                seed = job.params.seed
                rngs.append(torch.Generator().manual_seed(row_seed(seed, index, sample) if seed is not None else random.getrandbits(64)))
                rows.append((index, job.prompts[index]))
                owners.append((job, index * job.params.n + sample))
        try:
            batch = self.generator.start_batch(rows, units[0][0].params, rngs)
        except Exception as exc:  # handed to the waiting requests, which answer 500
            self._fail({job for job, _ in owners}, exc)
            return
        cohort = _Cohort(batch, owners, top_k=max(job.top_logprobs for job, _ in owners))
        if units[0][0].logit_bias:
            ids, biases = zip(*units[0][0].logit_bias)
            cohort.bias_V = torch.zeros(batch.logits_B.shape[-1], device=batch.logits_B.device)
            cohort.bias_V[list(ids)] = cohort.bias_V.new_tensor(biases)
        with self._lock:
            self._cohorts.append(cohort)

    def _turn(self, cohort: _Cohort) -> None:
        """Decode one chunk of ``cohort``; hand finished rows to their jobs."""
        try:
            for _ in range(self.chunk_tokens):
                self._shape_logits(cohort)
                if cohort.batch.step():
                    break
        except Exception as exc:
            self._fail({job for job, _ in cohort.owners}, exc)
            return
        if not cohort.batch.done:
            self._tell(cohort, None)
            with self._lock:
                self._cohorts.append(cohort)
            return
        finished: list[Job] = []
        completions = cohort.batch.completions()
        for (job, row), completion in zip(cohort.owners, completions):
            job.results[row] = completion
            job.in_flight -= 1
            if len(job.results) == job.rows and job.error is None:
                finished.append(job)
        # Listeners hear of the last rows before the future resolves (the stream ends on it).
        self._tell(cohort, completions)
        with self._lock:
            self._counts["generated_tokens"] += sum(len(c) for c in cohort.batch.tokens)
            self._counts["completed_requests"] += len(finished)
            self._jobs = [job for job in self._jobs if job not in finished]
        for job in finished:
            job.future.set_result([job.results[row] for row in range(job.rows)])

    @staticmethod
    def _shape_logits(cohort: _Cohort) -> None:
        """Add the cohort's logit_bias to the next-token logits, and record the most likely
        tokens of the rows still decoding, under the distribution ``step`` samples from
        (logits / T; T = 1 for greedy), so the sampled token's log-prob is among them."""
        batch = cohort.batch
        if cohort.bias_V is not None:
            batch.logits_B = batch.logits_B.float() + cohort.bias_V
        if not cohort.top_k:
            return
        temperature = batch.params.temperature or 1.0
        values_BK, ids_BK = torch.log_softmax(batch.logits_B.float() / temperature, dim=-1).topk(cohort.top_k, dim=-1)
        values, ids = values_BK.tolist(), ids_BK.tolist()
        for r, (job, row) in enumerate(cohort.owners):
            if job.top_logprobs and batch.finish[r] is None:
                k = job.top_logprobs
                job.top.setdefault(row, []).append(list(zip(ids[r][:k], values[r][:k])))

    @staticmethod
    def _tell(cohort: _Cohort, completions: list[Completion] | None) -> None:
        """Hand each listening job its rows' progress; a listener that fails cancels its job."""
        updates: dict[Job, list[RowUpdate]] = {}
        for r, (job, row) in enumerate(cohort.owners):
            if job.listener is not None:
                updates.setdefault(job, []).append((row, list(cohort.batch.tokens[r]), None if completions is None else completions[r]))
        for job, rows in updates.items():
            try:
                job.listener(rows)
            except Exception:  # its event loop is gone: nobody reads this request any more
                job.cancel()

    @staticmethod
    def _fail(jobs: set[Job], exc: Exception) -> None:
        """Decoding raised: the jobs involved fail with ``exc`` (their HTTP requests answer 500);
        the next pass of the loop drops their other rows and answers them."""
        for job in jobs:
            job.error = exc
