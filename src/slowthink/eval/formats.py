"""Other toolkits' output files as ``slowthink score`` input: where each keeps what a check needs.

A format is a set of default field paths (``eval/field_path.py``) and a reader; any path
can still be given by hand. Layouts (each tested on a file built in that layout):

- ``jsonl``: this project's rows, e.g. ``slowthink eval``'s ``samples.jsonl``:
  ``{"problem_id", "gold"|"answer", "response"}``.
- ``lighteval``: a details file, ``OUT/details/MODEL/TIME/details_TASK_TIME.parquet``,
  one row per document: ``doc`` (``query``, ``choices``, ``gold_index``, ...),
  ``model_response`` (``text``: the n responses, ...), ``metric``. The gold of a
  generative math task is ``doc.choices[doc.gold_index]``.
- ``lm-eval``: lm-evaluation-harness ``--log_samples`` output,
  ``OUT/MODEL/samples_TASK_TIME.jsonl``: ``doc_id``, ``doc``, ``target``, ``arguments``,
  ``resps`` (one list per request: ``resps[0]`` holds the ``repeats`` responses),
  ``filtered_resps``, ``metrics`` ...
- ``openai-batch``: an OpenAI Batch API output file: ``custom_id``, ``response``
  (``status_code``, ``body``: a chat completion, ``choices[*].message.content``) and
  ``error`` (set when the request failed). It holds no gold: ``--golds FILE`` gives rows
  ``{"id", "answer"}`` joined on ``custom_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slowthink.data.jsonl import JsonlRow, read_jsonl
from slowthink.data.problems import DataError


@dataclass(frozen=True)
class Layout:
    """Default paths of one format (None: the format has no such field)."""

    answer: str
    response: str
    responses: str
    # Rows with the same value here are samples of one problem (pass@k, maj@n).
    problem_id: str | None
    # A field that, when set, says the request failed (its "message" is the row's error).
    failure: str | None = None
    # Gold answers come from --golds, joined on this field of the row.
    join: str | None = None


FORMATS: dict[str, Layout] = {
    "jsonl": Layout(answer="answer", response="response", responses="responses", problem_id="problem_id"),
    "lighteval": Layout(answer="doc.choices[doc.gold_index]", response="model_response.text[0]", responses="model_response.text", problem_id=None),
    "lm-eval": Layout(answer="target", response="resps[0][0]", responses="resps[0]", problem_id="doc_id"),
    "openai-batch": Layout(
        answer="answer",
        response="response.body.choices[0].message.content",
        responses="response.body.choices[*].message.content",
        problem_id="custom_id",
        failure="error",
        join="custom_id",
    ),
}
FORMAT_NAMES = tuple(FORMATS)


def guess_format(path: Path) -> str:
    """The format a file's name says: a parquet file is lighteval's, samples_*.jsonl lm-eval's."""
    if path.suffix == ".parquet":
        return "lighteval"
    if path.name.startswith("samples_") and path.suffix == ".jsonl":
        return "lm-eval"
    return "jsonl"


def read_rows(path: Path) -> Iterator[JsonlRow]:
    """Every row of ``path``: JSONL under the one policy of ``data.jsonl``, or parquet rows
    (numbered from 1 like lines)."""
    if path.suffix != ".parquet":
        yield from read_jsonl(path)
        return
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading parquet needs the pyarrow package (pip install pyarrow)") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for an unreadable file
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    line = 0
    for batch in table.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            line += 1
            yield JsonlRow(line, row)


def count_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def load_golds(path: Path, id_field: str, answer_field: str) -> dict[str, str]:
    """{id: gold answer} from a JSONL file (for formats without golds); bad rows name their line."""
    golds: dict[str, str] = {}
    for read in read_jsonl(path):
        row: Any = read.value
        if read.error is not None or not isinstance(row, dict):
            raise ValueError(f"{path}:{read.line}: {read.error or 'expected a JSON object'}")
        if id_field not in row or answer_field not in row:
            raise ValueError(f"{path}:{read.line}: needs fields {id_field!r} and {answer_field!r}")
        golds[str(row[id_field])] = str(row[answer_field])
    return golds
