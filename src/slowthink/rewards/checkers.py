"""The one place an answer checker is built: ``make_checker("math" | "exact", ...)``.

- ``exact``: ``ExactMatchChecker``, string equality of the extracted answer (the tiny task).
- ``math``: ``MathChecker``, math-verify in a pool of worker processes killed and replaced
  past ``timeout_s`` (imported only when chosen, so the exact checker needs no sympy).

Callers close the checker when done (``checker.close()``, or ``stack.callback`` in an
``ExitStack``): the math checker's workers are processes.
"""

from __future__ import annotations

from typing import Literal

from slowthink.rewards.verdict import Checker, ExactMatchChecker

CheckerKind = Literal["math", "exact"]
CHECKER_KINDS = ("math", "exact")


def make_checker(kind: str, workers: int = 2, timeout_s: float = 5.0, fallback: bool = False) -> Checker:
    """A checker of ``kind``; ``workers``, ``timeout_s`` and ``fallback`` apply to the math checker only.

    ``fallback`` also accepts unboxed final answers ("the answer is X", the last number):
    for evaluation only, never for rewards.
    """
    if kind == "exact":
        return ExactMatchChecker()
    if kind == "math":
        from slowthink.rewards.math_checker import MathChecker

        return MathChecker(workers=workers, timeout_s=timeout_s, fallback=fallback)
    raise ValueError(f"unknown checker '{kind}'; allowed: {', '.join(CHECKER_KINDS)}")
