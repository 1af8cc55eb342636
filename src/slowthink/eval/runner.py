"""Run one benchmark: prompts -> generator -> checker -> per-sample rows, resumable.

Each finished sample is appended to ``samples.jsonl`` and flushed at once, so a killed run
loses only the requests in flight; a rerun reads the file (a truncated last line, the
trace of a kill mid-write, is dropped), skips every (problem, sample) pair it holds and
generates only the rest. Each generate call is seeded from the run seed and its first
sample, so rerunning the same plan draws the same samples.

With tools (``slowthink eval --tools python``) each row also holds ``tool_calls`` (how
many code blocks the response wrote) and ``tool_statuses`` (one sandbox status per block,
"not_executed" for blocks left unrun), from which ``tool_summary`` derives the tool metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

from slowthink.data.problems import DataError, Problem
from slowthink.eval.metrics import SampleRecord
from slowthink.prompts import render_prompt
from slowthink.rewards.verdict import Checker
from slowthink.rollout.generator import Completion, Generator, SamplingParams


@runtime_checkable
class StreamingGenerator(Protocol):
    """A generator that yields each prompt's completions as they finish (the OpenAI backend)."""

    def generate_stream(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> Iterator[tuple[int, list[Completion]]]: ...


# Extra per-sample fields written when the generator runs tools.
TOOL_FIELDS = ("tool_calls", "tool_statuses")


def tool_fields(completion: Completion) -> dict[str, Any]:
    """The tool fields of one row: how many code blocks, and each one's sandbox status."""
    statuses = [call["status"] for call in completion.tool_calls]
    return {"tool_calls": len(statuses), "tool_statuses": statuses}


@dataclass(frozen=True)
class Decoding:
    """How every sample is drawn. Greedy is one sample at temperature 0 (paper: greedy search)."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int = 0


class SampleStore:
    """``samples.jsonl``: rows read back on resume, new rows appended and flushed one by one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[tuple[str, int], SampleRecord] = {}
        # {"tool_calls": k, "tool_statuses": [...]} of rows drawn with tools, by the same key.
        self.tools: dict[tuple[str, int], dict[str, Any]] = {}
        if self.path.exists():
            self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        # A last line without its newline was cut by a kill: drop it, and cut it off the file
        # so that the next append starts on a fresh line.
        if lines and lines[-1]:
            with self.path.open("r+b") as handle:
                handle.truncate(len(data) - len(lines[-1]))
        for lineno, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                record = SampleRecord.from_json(row)
            except (json.JSONDecodeError, ValueError, TypeError) as exc:
                raise DataError(f"{self.path}:{lineno}: not a sample row ({exc}); move the file away to start over") from None
            self.records[(record.problem_id, record.sample_index)] = record
            if "tool_calls" in row:
                statuses = [str(status) for status in row.get("tool_statuses") or []]
                self.tools[(record.problem_id, record.sample_index)] = {"tool_calls": row["tool_calls"],
                                                                        "tool_statuses": statuses}

    def has(self, problem_id: str, sample_index: int) -> bool:
        return (problem_id, sample_index) in self.records

    def append(self, record: SampleRecord, tools: dict[str, Any] | None = None) -> None:
        """Write one row; ``tools`` (``tool_fields``) adds the tool-call fields to it."""
        self._handle.write(json.dumps({**record.to_json(), **(tools or {})}, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.records[(record.problem_id, record.sample_index)] = record
        if tools is not None:
            self.tools[(record.problem_id, record.sample_index)] = tools

    def close(self) -> None:
        self._handle.close()


def _draw_seed(base: int, problem_id: str, first_index: int) -> int:
    """A seed fixed by (run seed, problem, first missing sample): stable across resumes and batching."""
    digest = hashlib.sha256(f"{base}:{problem_id}:{first_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class _Work:
    problem: Problem
    prompt_text: str
    prompt_ids: list[int]
    missing: list[int]
    max_new_tokens: int


def plan_work(
    problems: Sequence[Problem], tokenizer: Any, template: str, decoding: Decoding, store: SampleStore,
    context_length: int | None,
) -> list[_Work]:
    """The samples still to draw, per problem; the token budget is cut to fit the model's context."""
    work = []
    for problem in problems:
        missing = [i for i in range(decoding.n) if not store.has(problem.id, i)]
        if not missing:
            continue
        # As prompts.encode_prompt: chat templates already hold their special tokens.
        text = render_prompt(template, problem.problem, tokenizer)
        ids = tokenizer.encode(text, add_special_tokens=False)
        budget = decoding.max_tokens
        if context_length is not None:
            budget = min(budget, context_length - len(ids))
            if budget < 1:
                raise DataError(
                    f"problem '{problem.id}': its prompt has {len(ids)} tokens, the model's context is "
                    f"{context_length}; nothing is left to generate"
                )
        work.append(_Work(problem, text, ids, missing, budget))
    return work


def _batches(work: list[_Work], chunk_size: int) -> Iterator[list[_Work]]:
    """Chunks of problems that share (number of missing samples, token budget)."""
    groups: dict[tuple[int, int], list[_Work]] = {}
    for item in work:
        groups.setdefault((len(item.missing), item.max_new_tokens), []).append(item)
    for items in groups.values():
        for start in range(0, len(items), chunk_size):
            yield items[start : start + chunk_size]


def _generate(
    generator: Generator, batch: list[_Work], params: SamplingParams
) -> Iterator[list[tuple[int, list[Completion]]]]:
    """Groups of (index in batch, completions), each group checked in one call: the whole
    batch at once, or prompt by prompt as a streaming generator finishes them."""
    prompts = [item.prompt_ids for item in batch]
    if isinstance(generator, StreamingGenerator):
        for pair in generator.generate_stream(prompts, params):
            yield [pair]
        return
    completions = generator.generate(prompts, params)
    n = params.n
    yield [(index, completions[index * n : (index + 1) * n]) for index in range(len(batch))]


def run_samples(
    problems: Sequence[Problem],
    generator: Generator,
    tokenizer: Any,
    checker: Checker,
    template: str,
    decoding: Decoding,
    store: SampleStore,
    context_length: int | None = None,
    chunk_size: int = 16,
    on_sample: Callable[[int], None] | None = None,
    record_tools: bool = False,
) -> list[SampleRecord]:
    """Draw every missing sample of ``problems``, score it and append it to ``store``.

    Returns the records of ``problems`` (old and new), ``decoding.n`` per problem.
    ``record_tools``: the generator is a tool loop; rows get the ``TOOL_FIELDS``.
    """
    work = plan_work(problems, tokenizer, template, decoding, store, context_length)
    # A streaming generator keeps its own requests in flight and hands back each prompt as
    # it finishes, so one call per group avoids waiting on the slowest prompt of each chunk.
    size = max(len(work), 1) if isinstance(generator, StreamingGenerator) else chunk_size
    for batch in _batches(work, size):
        first = batch[0]
        params = SamplingParams(
            temperature=decoding.temperature, top_p=decoding.top_p, max_new_tokens=first.max_new_tokens,
            n=len(first.missing), seed=_draw_seed(decoding.seed, first.problem.id, first.missing[0]),
        )
        for group in _generate(generator, batch, params):
            # One checker call per group: the checker's worker processes share the work.
            golds = [batch[index].problem.answer for index, completions in group for _ in completions]
            verdicts = iter(checker.check(golds, [c.text for _, completions in group for c in completions]))
            for index, completions in group:
                item = batch[index]
                for sample_index, completion in zip(item.missing, completions, strict=True):
                    verdict = next(verdicts)
                    store.append(SampleRecord(
                        problem_id=item.problem.id, sample_index=sample_index, prompt=item.prompt_text,
                        response=completion.text, num_tokens=completion.num_model_tokens,
                        finish_reason=completion.finish_reason, gold=item.problem.answer,
                        extracted=verdict.extracted, status=verdict.status, correct=verdict.correct,
                    ), tool_fields(completion) if record_tools else None)
                if on_sample is not None:
                    on_sample(len(completions))
    return [store.records[(p.id, i)] for p in problems for i in range(decoding.n)]


def tool_summary(records: Sequence[SampleRecord], store: SampleStore) -> dict[str, Any]:
    """Tool metrics of ``records`` (their rows must hold the tool fields), named as RL logs
    them: ``tools/<metric>`` and ``tools/status/<status>`` (``tool_loop.tool_metrics``)."""
    from slowthink.rollout.tool_loop import tool_metrics

    missing = [r for r in records if (r.problem_id, r.sample_index) not in store.tools]
    if missing:
        raise DataError(
            f"{store.path}: the row of problem '{missing[0].problem_id}' sample {missing[0].sample_index} was drawn "
            "without tools; use another --out for a run with --tools"
        )
    # tool_metrics reads only each completion's tool calls: rebuild them from the stored statuses.
    completions = [
        Completion(0, [], [], r.response, "stop",
                   tool_calls=[{"status": s} for s in store.tools[(r.problem_id, r.sample_index)]["tool_statuses"]])
        for r in records
    ]
    metrics = tool_metrics(completions, [r.correct for r in records])
    counts = metrics.pop("tool_status_counts")
    return {**{f"tools/{k}": v for k, v in metrics.items()}, **{f"tools/status/{k}": v for k, v in counts.items()}}


def count_missing(problems: Sequence[Problem], n: int, store: SampleStore) -> int:
    return sum(1 for p in problems for i in range(n) if not store.has(p.id, i))


def check_unique_ids(problems: Sequence[Problem], source: str) -> None:
    """Resume keys on problem ids, so two problems with one id would shadow each other."""
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise DataError(f"{source}: problem id '{problem.id}' appears twice; ids must be unique to resume")
        seen.add(problem.id)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a kill never leaves half a summary."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
