"""Per-sample evaluation records and the summary of a benchmark run.

Accuracy from several samples per problem (``slowthink.eval.passk``): pass@1 averaged
over the n samples (the paper's "Pass@1" with 5 or 8 samples, sections 4.3-4.4), greedy
accuracy (n = 1 at temperature 0), maj@n over answers the checker treats as equal
(``slowthink.eval.voting``) and unbiased pass@k for k = 1, 2, 4, ..., every k asked for, and n.
``unchecked`` counts samples whose check timed out or failed: they count as wrong, still
vote with their answer, and are checked again when the run resumes.

The per-response monitors are the ones training logs (``slowthink.monitors.metrics``), under the
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
from slowthink.eval.voting import PairCache, answer_classes
from slowthink.monitors.metrics import rollout_metrics
from slowthink.rewards.verdict import Checker, Verdict


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


def pass_k_values(n: int, asked: Sequence[int] = ()) -> list[int]:
    """The k of pass@k: powers of two up to n, every k the user asked for, and n itself
    (the paper's n = 5 setting gets pass@5)."""
    too_big = [k for k in asked if not 1 <= k <= n]
    if too_big:
        raise ValueError(f"pass@k needs 1 <= k <= n = {n} samples per problem, got k={too_big[0]}")
    return sorted({*powers_of_two(n), *asked, n})


# Statuses of a check that did not finish: the sample is not known to be wrong.
UNCHECKED = ("timeout", "error")


def vote_answer(record: SampleRecord) -> str | None:
    """The answer a sample votes with; one whose check did not finish is read without the checker."""
    if record.extracted is not None or record.status not in UNCHECKED:
        return record.extracted
    from slowthink.rewards.extract import extract_answer

    return extract_answer(record.response)


def majority_accuracy(groups: Sequence[Sequence[SampleRecord]], checker: Checker | None, cache: PairCache | None = None) -> float | None:
    """maj@n over problems: the vote runs over answers the checker treats as equal (eval/voting.py)."""
    if not groups:
        return None
    answer_lists = [[vote_answer(r) for r in rows] for rows in groups]
    classes = answer_classes(answer_lists, checker, cache)
    votes = [
        maj_at_n_correct(answers, [r.correct for r in rows], key=mapping.__getitem__, checked=[r.status not in UNCHECKED for r in rows])
        for answers, rows, mapping in zip(answer_lists, groups, classes)
    ]
    return sum(votes) / len(votes)


def summarize(records: Sequence[SampleRecord], n: int, mode: str, checker: Checker | None = None, ks: Sequence[int] = ()) -> dict[str, Any]:
    """The summary of one benchmark: ``n`` samples per problem in ``records``.

    ``checker`` decides which answers maj@n counts as one (None: identical strings);
    ``ks``: pass@k values wanted besides the powers of two and n.
    """
    groups = group_by_problem(records)
    short = [pid for pid, rows in groups.items() if len(rows) != n]
    if short:
        raise ValueError(f"problem '{short[0]}' has {len(groups[short[0]])} samples, expected {n}")
    correct_lists = [[r.correct for r in rows] for rows in groups.values()]
    summary: dict[str, Any] = {"mode": mode, "problems": len(groups), "samples_per_problem": n, "samples": len(records)}
    for k in pass_k_values(n, ks):
        summary[f"pass@{k}"] = mean_pass_at_k(correct_lists, k) if groups else None
    if mode == "greedy":
        summary["greedy_accuracy"] = summary["pass@1"]
    if n > 1:
        summary[f"maj@{n}"] = majority_accuracy(list(groups.values()), checker)
    summary.update(response_metrics(records))
    # Checks that timed out or failed count as wrong above: say how many there were.
    summary["unchecked"] = sum(1 for r in records if r.status in UNCHECKED)
    return summary
