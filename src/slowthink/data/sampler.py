"""A resumable prompt sampler: a seeded permutation per epoch and a position in it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class PromptSampler:
    """Yields problem indices in a fresh seeded order each epoch; ``state()`` resumes exactly."""

    size: int
    seed: int
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        # An empty pool would make ``take`` loop forever looking for the next index.
        if self.size < 1:
            raise ValueError(f"cannot sample prompts from an empty pool (size {self.size})")

    def _order(self) -> list[int]:
        order = list(range(self.size))
        random.Random(f"{self.seed}-{self.epoch}").shuffle(order)
        return order

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        order = self._order()
        while len(out) < count:
            if self.position >= self.size:
                self.epoch, self.position = self.epoch + 1, 0
                order = self._order()
            take = min(count - len(out), self.size - self.position)
            out.extend(order[self.position : self.position + take])
            self.position += take
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
