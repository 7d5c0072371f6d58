"""What every simulated Codex process of the generator shares, whichever contract it
speaks: a queue of planned facts, readable ids, and producer retries (a fact delivered
a second time a little later, with its ``seq``)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import deque
from typing import Any


class SimulatedProcess(ABC):
    """One Codex process: plans an episode of facts at a time and hands them out."""

    def __init__(self, name: str, rng: random.Random, duplicate_rate: float) -> None:
        self.name = name
        self.rng = rng
        self.duplicate_rate = duplicate_rate
        self.connections: list[int] = []
        self.counter = 0
        self.queue: deque[dict[str, Any]] = deque()
        self.recent: deque[dict[str, Any]] = deque(maxlen=16)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{self.name}-{prefix}{self.counter}"

    def next_fact(self) -> dict[str, Any]:
        if not self.queue:
            self._plan_episode()
        fact = self.queue.popleft()
        if fact["seq"] > (self.recent[-1]["seq"] if self.recent else 0):
            self.recent.append(fact)
            if self.rng.random() < self.duplicate_rate:
                # Redelivered a little later, as a producer retry would be.
                self.queue.insert(min(len(self.queue), self.rng.randrange(1, 6)), fact)
        return fact

    @abstractmethod
    def _plan_episode(self) -> None:
        """Append the facts of the process's next episode to ``queue``."""
