"""``slowthink score``'s config: ``fields`` (where a row keeps its gold, its responses and its
problem id) and ``checker`` (eval's checker section, with a time limit per check); the input,
its format, the output and pass@k stay at the top. The command-line flags set these keys
(cli/score.py); they were flat keys before, and a flat key now names where it went (``MOVED_KEYS``).
``Fields`` is what the sections resolve to: the paths each row is read at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from slowthink.config import StrictConfig
from slowthink.eval.field_path import parse_path
from slowthink.eval.formats import FORMATS
from slowthink.recipes.common_config import MovedKeysConfig
from slowthink.recipes.eval_config import EvalCheckerConfig


@dataclass(frozen=True)
class Fields:
    """Where a row keeps its gold, its response(s) and its problem id: paths (eval/field_path.py)."""

    answer: str = "answer"
    response: str = "response"
    responses: str = "responses"
    # Rows sharing this value are samples of one problem; None: every row is its own problem.
    problem_id: str | None = "problem_id"
    # Set when the request failed (OpenAI batch output's "error").
    failure: str | None = None
    # Gold answers from another file ({id: answer}), joined on the row's value at ``join``.
    golds: dict[str, str] | None = None
    join: str | None = None

    def check(self) -> None:
        """Every path parses; a malformed one is a ``ValueError`` naming it."""
        for path in (self.answer, self.response, self.responses, self.problem_id, self.failure, self.join):
            if path is not None:
                parse_path(path)


# The flat keys score read before its sections, and where each went (the flags did not change).
MOVED_KEYS = {
    "answer_field": "fields.answer",
    "response_field": "fields.response",
    "responses_field": "fields.responses",
    "id_field": "fields.id",
    "golds": "fields.golds",
    "golds_id_field": "fields.golds_id",
    "golds_answer_field": "fields.golds_answer",
    "checker": "checker.kind",
    "fallback": "checker.answer_fallback",
    "workers": "checker.workers",
    "timeout": "checker.timeout",
}


class ScoreFieldsConfig(StrictConfig):
    """Where a row keeps its gold, its response(s) and its problem id; null: the format's paths."""

    answer: str | None = None
    """Path of the gold answer (null: the format's; jsonl: answer). Dotted, with [0], [-1], [*] and indexes read from the row (docs/evaluation.md)."""
    response: str | None = None
    """Path of one response (null: the format's; jsonl: response)."""
    responses: str | None = None
    """Path of a list of responses, which wins over fields.response (null: the format's; jsonl: responses)."""
    id: str | None = None
    """Path of the problem id: rows sharing one are samples of one problem (pass@k, maj@n). Null: the format's (jsonl: problem_id)."""
    golds: str | None = None
    """JSONL of {id, answer} rows giving the golds of a file without them (openai-batch: joined on custom_id)."""
    golds_id: str = "id"
    """Field of the golds file holding the id."""
    golds_answer: str = "answer"
    """Field of the golds file holding the answer."""


class ScoreCheckerConfig(EvalCheckerConfig):
    """How final answers are checked (rewards/checkers.py): eval's checker section, and a time limit per check."""

    timeout: float = Field(5.0, gt=0)
    """Seconds one check may take before its worker is killed."""


class ScoreConfig(MovedKeysConfig):
    """Everything ``slowthink score`` needs: a YAML file, FILE and the flags, or key=value overrides."""

    command = "score"
    moved_keys = MOVED_KEYS

    file: str
    """JSONL rows with a gold answer and a response (or a list of responses), or another toolkit's output (format)."""
    out: str
    """Where to write the rows with 'correct' and 'status' added (a file; never the input file)."""
    # The names of eval/formats.py's FORMATS.
    format: Literal["jsonl", "lighteval", "lm-eval", "openai-batch"] | None = None
    """Layout of FILE (docs/evaluation.md): its default field paths; null: from the name (.parquet: lighteval, samples_*.jsonl: lm-eval, else jsonl)."""
    pass_k: tuple[int, ...] = ()
    """pass@k values to report per problem besides 1, 2, 4, ... and n."""
    fields: ScoreFieldsConfig = ScoreFieldsConfig()
    """Where each row keeps its gold, response(s) and problem id, or a golds file joined on the id."""
    checker: ScoreCheckerConfig = ScoreCheckerConfig()
    """How final answers are checked: math-verify or exact match, workers, the unboxed-answer fallback, a time limit."""

    def row_fields(self, golds: dict[str, str] | None = None) -> Fields:
        """The paths to read: each given one, else the format's."""
        from slowthink.eval.formats import guess_format

        layout, given = FORMATS[self.format or guess_format(Path(self.file))], self.fields
        return Fields(
            answer=given.answer or layout.answer,
            response=given.response or layout.response,
            responses=given.responses or layout.responses,
            problem_id=given.id or layout.problem_id,
            failure=layout.failure,
            golds=golds,
            join=(given.id or layout.join or layout.problem_id) if golds is not None else None,
        )
