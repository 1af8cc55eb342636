"""Schedules over RL steps: the KL coefficient, the length curriculum, reference resets.

All are pure functions of the step number, so a resumed run recomputes the same values
from its step counter and nothing about a schedule needs checkpointing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

KL_COEFFICIENT_MODES = ("off", "fixed", "cosine")


def cosine_anneal(step: int, start: float, end: float, steps: int) -> float:
    """``start`` at step 0, cosine-shaped to exactly ``end`` at ``step >= steps``.

    ``steps <= 0`` means there is nothing to anneal over: the value is ``end`` at once.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if steps <= 0 or step >= steps:
        return end
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * step / steps))


def kl_coefficient(mode: str, step: int, coef: float, start: float, end: float, anneal_steps: int) -> float:
    """The KL penalty coefficient in force at ``step`` (section 3.1.1, Figure 1(d)).

    - ``off``: 0.0 (STILL-3-Zero-32B, section 3.2).
    - ``fixed``: ``coef`` (1e-3 in section 4.3).
    - ``cosine``: dynamic KL annealing, cosine from ``start`` to ``end`` over
      ``anneal_steps`` (the paper decays 1e-3 to 0), and nothing else. The paper's released
      code adds the fixed coefficient on top of the annealed one, so its KL never reaches
      0; here ``coef`` is ignored in this mode and the value is exactly ``end`` from
      ``anneal_steps`` on.
    """
    if mode == "off":
        return 0.0
    if mode == "fixed":
        return coef
    if mode == "cosine":
        return cosine_anneal(step, start, end, anneal_steps)
    raise ValueError(f"unknown KL coefficient mode {mode!r}; allowed: {', '.join(map(repr, KL_COEFFICIENT_MODES))}")


def max_length_at(step: int, schedule: Sequence[tuple[int, int]]) -> int:
    """The generation budget (tokens) at ``step`` under a piecewise-constant curriculum.

    ``schedule`` is ``[(from_step, max_tokens), ...]`` sorted by ``from_step``, starting
    at 0; e.g. ``[(0, 8192), (100, 20480)]``: STILL-3-Zero-32B starts at 8k so that early
    gibberish stops soon, then extends to 20k (section 3.2).
    """
    _check_length_schedule(schedule)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    current = schedule[0][1]
    for from_step, max_tokens in schedule:
        if from_step > step:
            break
        current = max_tokens
    return current


def _check_length_schedule(schedule: Sequence[tuple[int, int]]) -> None:
    """Raise a ValueError naming the entry that makes ``schedule`` unusable."""
    if len(schedule) == 0:
        raise ValueError("max-length schedule is empty; give at least [(0, max_tokens)]")
    if schedule[0][0] != 0:
        raise ValueError(f"max-length schedule must start at step 0, its first entry is {tuple(schedule[0])}")
    for index, (from_step, max_tokens) in enumerate(schedule):
        if max_tokens < 1:
            raise ValueError(f"max-length schedule entry {index} {(from_step, max_tokens)}: max_tokens must be >= 1")
        if index > 0 and from_step <= schedule[index - 1][0]:
            raise ValueError(
                f"max-length schedule entry {index} {(from_step, max_tokens)}: from_step must be greater than "
                f"the previous entry's {schedule[index - 1][0]} (entries sorted, no repeats)"
            )


def reference_reset_due(step: int, every: int) -> bool:
    """True when the reference model should be replaced by the current policy at ``step``.

    Section 4.3 (STILL-3-1.5B) "periodically replace[s] the reference model after a
    predefined number of training steps", which loosens the KL constraint without turning
    it off. ``every = 0`` turns resets off; step 0 never resets (the reference already is
    the initial policy).
    """
    if every < 0:
        raise ValueError(f"reference reset interval must be >= 0 (0 turns it off), got {every}")
    return every > 0 and step > 0 and step % every == 0
