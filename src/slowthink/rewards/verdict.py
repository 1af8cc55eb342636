"""What a checker says about one response, and the ``Checker`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from slowthink.rewards.extract import extract_answer, oversized_answer

# Every check ends in exactly one of these; their counts are logged as metrics.
Status = Literal["correct", "wrong", "no_answer", "unparseable_gold", "timeout", "error"]
STATUSES: tuple[str, ...] = ("correct", "wrong", "no_answer", "unparseable_gold", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    status: Status
    extracted: str | None = None
    detail: str = ""

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def has_answer(self) -> bool:
        return self.status not in ("no_answer",)


class Checker(Protocol):
    """Decides, for each (gold, response) pair, whether the response's final answer is right."""

    def check(self, golds: Sequence[str], responses: Sequence[str]) -> list[Verdict]: ...

    def close(self) -> None: ...


class ExactMatchChecker:
    """String equality of the extracted answer with the gold (after stripping spaces).

    Used by the synthetic tiny task, whose answers are integers written one way.
    """

    def check(self, golds: Sequence[str], responses: Sequence[str]) -> list[Verdict]:
        verdicts = []
        for gold, response in zip(golds, responses, strict=True):
            answer = extract_answer(response)
            if answer is None and oversized_answer(response) is not None:
                verdicts.append(Verdict("wrong", detail="boxed answer too long to compare"))
            elif answer is None:
                verdicts.append(Verdict("no_answer"))
            elif answer.replace(" ", "") == gold.replace(" ", ""):
                verdicts.append(Verdict("correct", answer))
            else:
                verdicts.append(Verdict("wrong", answer))
        return verdicts

    def close(self) -> None:
        pass
