"""The tiny demo's synthetic, verifiable arithmetic task: problems, splits, reference
chains of thought and the cold-start SFT mix. The tokenizer and model it is learnt by are
in ``slowthink.models.tiny``.

The task (docs/design.md, "The tiny demo"): the sum of K numbers of D digits.
Its reference chain of thought adds one column at a time, least significant first::

    <think>4+4+6=14
    6+9+7+1=23
    9+4+8+2=23</think>\\boxed{2334}

The SFT cold-start mixes full chains of thought with bare answers, the mix tied to a
feature of the problem (a thought 80% of the time when the first operand is in the top 30%
of its range, 20% otherwise: ``ArithmeticTask.think_probability``). The SFT model then
thinks on some problems and guesses on others; RL elicits the thinking mode it already has (paper sections 3.2 and 5), raising
accuracy as response length grows.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass

from slowthink.data.problems import Problem


@dataclass(frozen=True)
class ArithmeticTask:
    """Sum of ``num_operands`` numbers with ``digits`` digits each; difficulty grows with both."""

    num_operands: int = 3
    digits: int = 3
    # Fraction of problems held out for evaluation (chosen by a hash, so stable across seeds).
    heldout_fraction: float = 0.2
    # Cold-start mix (see think_probability): the share of the first operand's range where
    # demonstrations mostly think, and the think probabilities inside and outside it.
    think_share: float = 0.3
    think_high: float = 0.8
    think_low: float = 0.2
    # Share of thinking demonstrations that end their thought with a verification step
    # ("wait, <operands reversed>=<sum>"), so that reflection keywords can appear at all and
    # the keyword monitors of section 3.2 (Figure 4) and RRA's action count have something
    # to measure. 0 (the demo's cold start) leaves the demonstrations as they were.
    verify_probability: float = 0.0

    @property
    def low(self) -> int:
        return 10 ** (self.digits - 1)

    @property
    def high(self) -> int:
        return 10**self.digits - 1

    def question(self, operands: tuple[int, ...]) -> str:
        return "+".join(str(x) for x in operands)

    def answer(self, operands: tuple[int, ...]) -> str:
        return str(sum(operands))

    def chain_of_thought(self, operands: tuple[int, ...]) -> str:
        """One line per column, units first, with the carry added last: ``4+4+6=14``."""
        width = max(len(str(x)) for x in operands)
        lines, carry = [], 0
        for column in range(width):
            column_digits = [(x // 10**column) % 10 for x in operands]
            terms = column_digits + ([carry] if carry else [])
            total = sum(terms)
            lines.append("+".join(str(t) for t in terms) + f"={total}")
            carry = total // 10
        return "\n".join(lines)

    def verification(self, operands: tuple[int, ...]) -> str:
        """A check of the sum in the other order, opened by a reflection keyword: ``wait, 876+494+964=2334``.

        Short enough that a verified thought of 3 numbers of 3 digits still fits the demo's
        64-token responses (at most 63 tokens with the end of turn)."""
        return "wait, " + "+".join(str(x) for x in reversed(operands)) + "=" + self.answer(operands)

    def solution(self, operands: tuple[int, ...], think: bool = True, verify: bool = False) -> str:
        """The reference response: a thought (optionally verified) then a boxed answer, or a bare boxed answer."""
        boxed = "\\boxed{" + self.answer(operands) + "}"
        if not think:
            return boxed
        thought = self.chain_of_thought(operands) + ("\n" + self.verification(operands) if verify else "")
        return f"<think>{thought}</think>{boxed}"

    def is_heldout(self, operands: tuple[int, ...]) -> bool:
        digest = hashlib.sha256(self.question(operands).encode()).digest()
        return digest[0] / 256 < self.heldout_fraction

    def sample_operands(self, rng: random.Random, heldout: bool) -> tuple[int, ...]:
        while True:
            operands = tuple(rng.randint(self.low, self.high) for _ in range(self.num_operands))
            if self.is_heldout(operands) == heldout:
                return operands

    def split_size(self, heldout: bool, limit: int = 100_000) -> int | None:
        """How many distinct problems one side of the split holds; None when the task has
        more than ``limit`` operand tuples (too many to count, and never exhausted)."""
        if (self.high - self.low + 1) ** self.num_operands > limit:
            return None
        numbers = range(self.low, self.high + 1)
        return sum(self.is_heldout(ops) == heldout for ops in itertools.product(numbers, repeat=self.num_operands))

    def problems(self, count: int, seed: int, heldout: bool) -> list[Problem]:
        """``count`` distinct problems from the train (or held-out) side of the split."""
        # An easy task (e.g. one-digit numbers) has few distinct problems: asking for more
        # would make the loop below draw forever.
        available = self.split_size(heldout)
        if available is not None and count > available:
            side = "held-out" if heldout else "train"
            raise ValueError(
                f"the tiny task ({self.num_operands} numbers of {self.digits} digits) has only {available} distinct "
                f"{side} problems, {count} asked for: ask for fewer or use more digits or operands"
            )
        rng = random.Random(f"{seed}-{heldout}")
        seen: set[tuple[int, ...]] = set()
        out = []
        while len(out) < count:
            operands = self.sample_operands(rng, heldout)
            if operands in seen:
                continue
            seen.add(operands)
            out.append(
                Problem(
                    id=f"{'heldout' if heldout else 'train'}-{len(out)}",
                    problem=self.question(operands),
                    answer=self.answer(operands),
                    source="tiny-arithmetic",
                    meta={"operands": list(operands)},
                )
            )
        return out

    def think_threshold(self) -> float:
        """First-operand value from which demonstrations mostly think (top ``think_share`` of the range)."""
        return self.high - self.think_share * (self.high - self.low)

    def think_probability(self, operands: tuple[int, ...]) -> float:
        """Chance that the cold-start SFT demonstration thinks: tied to the first operand.

        Problems whose first operand lies in the top ``think_share`` of its range think with
        probability ``think_high``, the others with ``think_low``. A greedy SFT model then thinks
        on about that share of problems and answers directly (and mostly wrongly) elsewhere,
        though it has seen the reasoning mode on every kind of problem: RL's room to elicit it.
        """
        return self.think_high if operands[0] >= self.think_threshold() else self.think_low

    def sft_rows(self, count: int, seed: int, all_think: bool = False) -> list[dict]:
        """Cold-start SFT data: ``{"prompt", "response"}`` rows mixing thoughts and bare answers."""
        rng = random.Random(f"sft-{seed}")
        # A stream of its own: verify_probability = 0 draws nothing and leaves the rows as they were.
        verify_rng = random.Random(f"sft-verify-{seed}")
        rows = []
        for problem in self.problems(count, seed, heldout=False):
            operands = tuple(problem.meta["operands"])
            think = all_think or rng.random() < self.think_probability(operands)
            verify = think and self.verify_probability > 0 and verify_rng.random() < self.verify_probability
            rows.append({"prompt": problem.problem, "response": self.solution(operands, think=think, verify=verify), "answer": problem.answer})
        return rows
