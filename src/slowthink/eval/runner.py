"""Run one benchmark: prompts -> generator -> checker -> per-sample rows, resumable.

Each finished sample is appended to ``samples.jsonl`` and flushed at once, so a killed run
loses only the requests in flight; a rerun reads the file (a truncated last line, the
trace of a kill mid-write, is dropped), skips every sample it holds and generates only
the rest.

What a sample is, on resume (keying on file name + problem id reused samples of
another file with the same name, and verdicts against a since-corrected answer):

- A sample is keyed by a **fingerprint of the prompt the model saw** (the rendered problem
  text; ``#k`` is added to the k-th repeat of one text in a file) and its sample index.
  The generation settings that define a sample are checked by ``slowthink eval`` itself
  (``run.json``). Another file under the same name, or an edited problem, draws anew.
- The **answer is not part of the key**: a response does not depend on it. When a
  problem's answer changed, its stored responses are re-checked against the new answer and
  the file is rewritten (atomically) with the new verdicts; nothing is drawn again. A
  problem whose id changed keeps its samples, relabelled. A sample whose check timed out
  or failed is checked again.
- Samples of **edited or deleted problems are removed** from the file
  (``drop_stale_samples``); which model drew the samples is checked by ``slowthink eval``
  (``eval/identity.py``, ``run.json``).
- **Every sample has its own seed**, derived from the run seed, the key and the sample
  index (``SamplingParams.seeds``), so a sample does not depend on which other problems
  share its batch: a resumed eval draws exactly what an uninterrupted one draws (hf and
  vllm backends; the openai backend seeds each prompt's request).

With tools (``slowthink eval --tools python``) each row also holds ``tool_calls`` (how
many code blocks the response wrote) and ``tool_statuses`` (one sandbox status per block,
"not_executed" for blocks left unrun), from which ``tool_summary`` derives the tool metrics.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from slowthink.data.jsonl import dumps_line, parse_line
from slowthink.data.problems import DataError, Problem
from slowthink.data.prompts import render_prompt
from slowthink.durable import atomic_write_text
from slowthink.eval.metrics import UNCHECKED, SampleRecord
from slowthink.rewards.verdict import Checker
from slowthink.rollout.generator import Completion, Generator, SamplingParams


@runtime_checkable
class StreamingGenerator(Protocol):
    """A generator that yields each prompt's completions as they finish (the OpenAI backend)."""

    def generate_stream(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> Iterator[tuple[int, list[Completion]]]: ...


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


def fingerprint(text: str) -> str:
    """16 hex digits of SHA-256 of ``text`` (lone surrogates included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def prompt_keys(prompts: Sequence[str]) -> list[str]:
    """The resume key of each prompt: its fingerprint, ``#k`` added to the k-th repeat."""
    seen: Counter[str] = Counter()
    keys = []
    for text in prompts:
        digest = fingerprint(text)
        keys.append(f"{digest}#{seen[digest]}" if seen[digest] else digest)
        seen[digest] += 1
    return keys


class SampleStore:
    """``samples.jsonl``: rows read back on resume, new rows appended and flushed one by one.

    Rows are kept by (key, sample index); ``key`` is a field of each row. A row written
    before keys existed is keyed by the fingerprint of its ``prompt`` field.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        # {"tool_calls": k, "tool_statuses": [...]} of rows drawn with tools, by (problem id, sample index).
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
            read = parse_line(line, lineno)
            try:
                if read.error is not None:
                    raise ValueError(read.error)
                row = read.value
                record = SampleRecord.from_json(row)
            except (ValueError, TypeError) as exc:
                raise DataError(f"{self.path}:{lineno}: not a sample row ({exc}); move the file away to start over") from None
            key = str(row.get("key") or fingerprint(record.prompt))
            self.rows[(key, record.sample_index)] = {**row, "key": key}
            self._index_tools(row)

    def _index_tools(self, row: dict[str, Any]) -> None:
        if "tool_calls" in row:
            statuses = [str(status) for status in row.get("tool_statuses") or []]
            self.tools[(row["problem_id"], row["sample_index"])] = {"tool_calls": row["tool_calls"], "tool_statuses": statuses}

    def has(self, key: str, sample_index: int) -> bool:
        return (key, sample_index) in self.rows

    def record(self, key: str, sample_index: int) -> SampleRecord:
        return SampleRecord.from_json(self.rows[(key, sample_index)])

    def append(self, key: str, record: SampleRecord, tools: dict[str, Any] | None = None) -> None:
        """Write one row; ``tools`` (``tool_fields``) adds the tool-call fields to it."""
        row = {**record.to_json(), "key": key, **(tools or {})}
        # dumps_line escapes lone surrogates rather than failing on them: the row is kept.
        self._handle.write(dumps_line(row))
        self._handle.flush()
        self.rows[(key, record.sample_index)] = row
        self._index_tools(row)

    def rewrite(self) -> None:
        """Write every row again (after ``self.rows`` changed in place): temp file + rename."""
        self._handle.close()
        atomic_write_text(self.path, "".join(dumps_line(row) for row in self.rows.values()))
        self.tools.clear()
        for row in self.rows.values():
            self._index_tools(row)
        self._handle = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._handle.close()


def sample_seed(base: int, key: str, sample_index: int) -> int:
    """The seed of one sample, fixed by (run seed, prompt key, sample index): the same
    however the samples are batched, and across resumes."""
    digest = hashlib.sha256(f"{base}:{key}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def recheck_answers(problems: Sequence[Problem], keys: Sequence[str], n: int, checker: Checker, store: SampleStore) -> int:
    """Bring stored samples up to date with ``problems``: re-check the responses of a
    problem whose answer changed, and those whose check timed out or failed (a busy machine
    is no verdict), relabel those of a problem whose id changed, and rewrite the file once.
    Returns the number of samples re-checked."""
    stale = [
        (problem, key, i)
        for problem, key in zip(problems, keys)
        for i in range(n)
        if store.has(key, i)
        and (
            (store.rows[(key, i)]["gold"], store.rows[(key, i)]["problem_id"]) != (problem.answer, problem.id)
            or store.rows[(key, i)]["status"] in UNCHECKED
        )
    ]
    if not stale:
        return 0
    regrade = [
        (problem, key, i)
        for problem, key, i in stale
        if store.rows[(key, i)]["gold"] != problem.answer or store.rows[(key, i)]["status"] in UNCHECKED
    ]
    verdicts = checker.check([problem.answer for problem, _, _ in regrade], [store.rows[(key, i)]["response"] for _, key, i in regrade])
    for (problem, key, i), verdict in zip(regrade, verdicts, strict=True):
        store.rows[(key, i)].update(gold=problem.answer, extracted=verdict.extracted, status=verdict.status, correct=verdict.correct)
    for problem, key, i in stale:
        store.rows[(key, i)]["problem_id"] = problem.id
    store.rewrite()
    return len(regrade)


def drop_stale_samples(problems: Sequence[Problem], keys: Sequence[str], known_ids: set[str], store: SampleStore) -> int:
    """Remove the samples of problems that were edited (their id is asked for under another
    prompt) or deleted (their id is no longer in the benchmark, ``known_ids``), so that old
    responses never sit in ``samples.jsonl`` beside the new ones. Returns how many went.

    Samples of problems left out only by ``--limit`` are in ``known_ids`` and stay."""
    wanted, asked_ids = set(keys), {problem.id for problem in problems}
    stale = [
        slot for slot, row in store.rows.items() if slot[0] not in wanted and (row["problem_id"] in asked_ids or row["problem_id"] not in known_ids)
    ]
    for slot in stale:
        del store.rows[slot]
    if stale:
        store.rewrite()
    return len(stale)


@dataclass
class _Work:
    problem: Problem
    key: str
    prompt_text: str
    prompt_ids: list[int]
    missing: list[int]
    max_new_tokens: int


def render_prompts(problems: Sequence[Problem], tokenizer: Any, template: str) -> list[str]:
    return [render_prompt(template, problem.problem, tokenizer) for problem in problems]


def plan_work(
    problems: Sequence[Problem],
    prompts: Sequence[str],
    keys: Sequence[str],
    tokenizer: Any,
    decoding: Decoding,
    store: SampleStore,
    context_length: int | None,
) -> list[_Work]:
    """The samples still to draw, per problem; the token budget is cut to fit the model's context."""
    work = []
    for problem, text, key in zip(problems, prompts, keys, strict=True):
        missing = [i for i in range(decoding.n) if not store.has(key, i)]
        if not missing:
            continue
        # As prompts.encode_prompt: chat templates already hold their special tokens.
        ids = tokenizer.encode(text, add_special_tokens=False)
        budget = decoding.max_tokens
        if context_length is not None:
            budget = min(budget, context_length - len(ids))
            if budget < 1:
                raise DataError(
                    f"problem '{problem.id}': its prompt has {len(ids)} tokens, the model's context is {context_length}; nothing is left to generate"
                )
        work.append(_Work(problem, key, text, ids, missing, budget))
    return work


def _batches(work: list[_Work], chunk_size: int) -> Iterator[list[_Work]]:
    """Chunks of problems that share (number of missing samples, token budget)."""
    groups: dict[tuple[int, int], list[_Work]] = {}
    for item in work:
        groups.setdefault((len(item.missing), item.max_new_tokens), []).append(item)
    for items in groups.values():
        for start in range(0, len(items), chunk_size):
            yield items[start : start + chunk_size]


def _generate(generator: Generator, batch: list[_Work], params: SamplingParams) -> Iterator[list[tuple[int, list[Completion]]]]:
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
    known_ids: set[str] | None = None,
) -> list[SampleRecord]:
    """Draw every missing sample of ``problems``, score it and append it to ``store``.

    Returns the records of ``problems`` (old and new), ``decoding.n`` per problem.
    ``record_tools``: the generator is a tool loop; rows get the ``TOOL_FIELDS``.
    ``known_ids``: every id of the benchmark (before ``--limit``); stored samples of other
    ids, and of edited problems, are removed (default: the ids of ``problems``).
    """
    prompts = render_prompts(problems, tokenizer, template)
    keys = prompt_keys(prompts)
    recheck_answers(problems, keys, decoding.n, checker, store)
    drop_stale_samples(problems, keys, known_ids if known_ids is not None else {p.id for p in problems}, store)
    work = plan_work(problems, prompts, keys, tokenizer, decoding, store, context_length)
    # A streaming generator keeps its own requests in flight and hands back each prompt as
    # it finishes, so one call per group avoids waiting on the slowest prompt of each chunk.
    size = max(len(work), 1) if isinstance(generator, StreamingGenerator) else chunk_size
    for batch in _batches(work, size):
        first = batch[0]
        # One seed per sample; ``seed`` is for engines that take only one per call.
        seeds = tuple(sample_seed(decoding.seed, item.key, i) for item in batch for i in item.missing)
        params = SamplingParams(
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            max_new_tokens=first.max_new_tokens,
            n=len(first.missing),
            seed=seeds[0],
            seeds=seeds,
        )
        for group in _generate(generator, batch, params):
            # One checker call per group: the checker's worker processes share the work.
            golds = [batch[index].problem.answer for index, completions in group for _ in completions]
            verdicts = iter(checker.check(golds, [c.text for _, completions in group for c in completions]))
            for index, completions in group:
                item = batch[index]
                for sample_index, completion in zip(item.missing, completions, strict=True):
                    verdict = next(verdicts)
                    store.append(
                        item.key,
                        SampleRecord(
                            problem_id=item.problem.id,
                            sample_index=sample_index,
                            prompt=item.prompt_text,
                            response=completion.text,
                            num_tokens=completion.num_model_tokens,
                            finish_reason=completion.finish_reason,
                            gold=item.problem.answer,
                            extracted=verdict.extracted,
                            status=verdict.status,
                            correct=verdict.correct,
                        ),
                        tool_fields(completion) if record_tools else None,
                    )
                if on_sample is not None:
                    on_sample(len(completions))
    return [store.record(key, i) for key in keys for i in range(decoding.n)]


def tool_summary(records: Sequence[SampleRecord], store: SampleStore) -> dict[str, Any]:
    """Tool metrics of ``records`` (their rows must hold the tool fields), named as RL logs
    them: ``tools/<metric>`` and ``tools/status/<status>`` (``monitors/tools.py``)."""
    from slowthink.monitors.tools import tool_metrics

    missing = [r for r in records if (r.problem_id, r.sample_index) not in store.tools]
    if missing:
        raise DataError(
            f"{store.path}: the row of problem '{missing[0].problem_id}' sample {missing[0].sample_index} was drawn "
            "without tools; use another --out for a run with --tools"
        )
    # tool_metrics reads only each completion's tool calls: rebuild them from the stored statuses.
    completions = [
        Completion(0, [], [], r.response, "stop", tool_calls=[{"status": s} for s in store.tools[(r.problem_id, r.sample_index)]["tool_statuses"]])
        for r in records
    ]
    metrics = tool_metrics(completions, [r.correct for r in records])
    counts = metrics.pop("tool_status_counts")
    return {**{f"tools/{k}": v for k, v in metrics.items()}, **{f"tools/status/{k}": v for k, v in counts.items()}}


def count_missing(problems: Sequence[Problem], n: int, store: SampleStore, tokenizer: Any, template: str) -> int:
    """Samples of ``problems`` that ``store`` does not hold yet."""
    keys = prompt_keys(render_prompts(problems, tokenizer, template))
    return sum(1 for key in keys for i in range(n) if not store.has(key, i))


def check_unique_ids(problems: Sequence[Problem], source: str) -> None:
    """Summaries group samples by problem id, so two problems with one id would merge."""
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise DataError(f"{source}: problem id '{problem.id}' appears twice; ids must be unique to resume")
        seen.add(problem.id)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + fsync + rename): a kill never leaves half a summary."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
