"""The paper's reward components (section 4.2.1) as pure functions of one response.

Each takes what it needs (the verdict's status, the text, the length) and returns a float.
They are combined with weights by ``slowthink.rewards.reward.RewardModel``.
"""

from __future__ import annotations

import re

from slowthink.rewards.keywords import ACTION_REWARD_KEYWORDS, count_keywords
from slowthink.rewards.verdict import Verdict

# R1-Zero format: the response (after the template's opening "<think>") is a thought then
# an answer. We accept the response with or without the leading "<think>", since the
# short and long prompts (section 3.1.2) end with "<think>". Exactly one thought and one
# answer: a second </think> or <answer> block breaks the format (it was accepted before).
_FORMAT_RE = re.compile(
    r"^\s*(?:<think>)?(?:(?!</?think>).)*</think>\s*<answer>(?:(?!</?answer>|</?think>).)*</answer>\s*$",
    re.DOTALL,
)


def correctness_reward(verdict: Verdict) -> float:
    """1 if the final answer is right, else 0 (also 0 with no boxed answer). Section 4.2.1."""
    return 1.0 if verdict.correct else 0.0


def still3_reward(verdict: Verdict) -> float:
    """+1 correct, -1 wrong, -2 when nothing is boxed: an outcome reward with penalties.

    Not from the paper: its text defines the outcome reward as 1 correct / 0 otherwise, 0 too
    with nothing boxed (section 2, "Reward Design"), and cites no source for these values;
    ``correctness_reward`` is the paper's. Kept as an option; no paper preset uses it."""
    if verdict.correct:
        return 1.0
    return -2.0 if verdict.status == "no_answer" else -1.0


def format_reward(text: str) -> float:
    """1 if the response is ``<think>…</think><answer>…</answer>`` (R1-Zero format), else 0."""
    return 1.0 if _FORMAT_RE.match(text) else 0.0


def signed_outcome(verdict: Verdict) -> float:
    return 1.0 if verdict.correct else -1.0


def length_reward(verdict: Verdict, length: int, max_length: int) -> float:
    """RRL = L / Lmax + (+1 correct | -1 wrong), L in tokens. Section 4.2.1."""
    if max_length <= 0 or length < 0:
        raise ValueError(f"length reward needs max_length > 0 and length >= 0 (got {length}, {max_length})")
    return min(length, max_length) / max_length + signed_outcome(verdict)


def action_reward(verdict: Verdict, text: str, max_actions: int = 20, keywords: tuple[str, ...] = ACTION_REWARD_KEYWORDS) -> float:
    """RRA = min(A, Amax) / Amax + (+1 | -1), A = keyword count. Section 4.2.1 (Amax = 20)."""
    if max_actions <= 0:
        raise ValueError(f"action reward needs max_actions (Amax) > 0 (got {max_actions})")
    actions = count_keywords(text, keywords)
    return min(actions, max_actions) / max_actions + signed_outcome(verdict)
