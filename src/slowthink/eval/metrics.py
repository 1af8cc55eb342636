"""Per-sample evaluation records and the summary of a benchmark run.

Must not import recipes or the CLI (tests/test_layers.py).

Accuracy from several samples per problem (``slowthink.eval.passk``): pass@1 averaged
over the n samples (the paper's "Pass@1" with 5 or 8 samples, sections 4.3-4.4), greedy
accuracy (n = 1 at temperature 0), maj@n and unbiased pass@k for k = 1, 2, 4, ... <= n.

The per-response monitors are the ones training logs (``slowthink.metrics``), under the
same names, so eval and training curves compare directly:
- ``response_length_correct`` / ``_incorrect``: mean tokens of correct vs incorrect
  responses (Table 4: incorrect responses of R1-distilled models are 2-3x longer);
  "incorrect" includes responses without an answer (often cut at the token limit).
- ``completion_ratio``: share of responses that ended on their own (EOS or a stop string)
  before the token limit (section 4.2.2: it falls when length is hacked).
- ``keywords/<category>`` (mean occurrences per response) and ``keywords/<category>_ratio``
  (share of responses with any), for the categories of section 3.2 / Figure 4.
- ``check/<status>``: how many checks ended in each status.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from slowthink.eval.passk import maj_at_n_correct, mean_pass_at_k
from slowthink.metrics import rollout_metrics
from slowthink.rewards.verdict import Verdict


@dataclass(frozen=True)
class SampleRecord:
    """One generated response to one problem, scored: one line of ``samples.jsonl``."""

    problem_id: str
    sample_index: int
    prompt: str
    response: str
    # Generated tokens (model tokens only; the length the paper reports).
    num_tokens: int
    finish_reason: str
    gold: str
    extracted: str | None
    status: str
    correct: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> SampleRecord:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise ValueError(f"sample row lacks field(s) {', '.join(missing)}")
        return cls(**{n: row[n] for n in names})


def group_by_problem(records: Iterable[SampleRecord]) -> dict[str, list[SampleRecord]]:
    """Records per problem id (first-seen order), each list sorted by sample index."""
    groups: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        groups[record.problem_id].append(record)
    return {pid: sorted(rows, key=lambda r: r.sample_index) for pid, rows in groups.items()}


def response_metrics(records: Sequence[SampleRecord]) -> dict[str, float | int | None]:
    """Lengths, completion ratio, keywords and status counts; None where a mean has no data."""
    verdicts = [Verdict(r.status, r.extracted) for r in records]  # type: ignore[arg-type]
    raw = rollout_metrics([r.response for r in records], [r.num_tokens for r in records], [r.finish_reason == "stop" for r in records], verdicts)
    out: dict[str, float | int | None] = {}
    for key, value in raw.items():
        if key.startswith("check/"):
            out[key] = int(value)
        else:
            # JSON has no NaN: an empty mean (no correct response, say) is null.
            out[key] = None if math.isnan(value) else value
    return out


def powers_of_two(n: int) -> list[int]:
    """1, 2, 4, ... up to n: the k of the pass@k curve."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def summarize(records: Sequence[SampleRecord], n: int, mode: str) -> dict[str, Any]:
    """The summary of one benchmark: ``n`` samples per problem in ``records``."""
    groups = group_by_problem(records)
    short = [pid for pid, rows in groups.items() if len(rows) != n]
    if short:
        raise ValueError(f"problem '{short[0]}' has {len(groups[short[0]])} samples, expected {n}")
    correct_lists = [[r.correct for r in rows] for rows in groups.values()]
    summary: dict[str, Any] = {"mode": mode, "problems": len(groups), "samples_per_problem": n, "samples": len(records)}
    for k in powers_of_two(n):
        summary[f"pass@{k}"] = mean_pass_at_k(correct_lists, k) if groups else None
    if mode == "greedy":
        summary["greedy_accuracy"] = summary["pass@1"]
    if n > 1:
        votes = [maj_at_n_correct([r.extracted for r in rows], [r.correct for r in rows]) for rows in groups.values()]
        summary[f"maj@{n}"] = sum(votes) / len(votes) if votes else None
    summary.update(response_metrics(records))
    return summary
