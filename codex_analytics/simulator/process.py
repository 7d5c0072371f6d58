"""What every simulated Codex process of the generator shares, whichever contract it
speaks: a queue of planned facts, readable ids, producer retries (a fact delivered a
second time a little later, with its ``seq``), and the episodes whose facts both
contracts' builders make alike (connections, steers, app mentions and uses, hooks)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from codex_analytics.simulator.fact_builder import EnvelopeBuilder, app

if TYPE_CHECKING:
    from codex_analytics.simulator.generator import GeneratorConfig

BuilderT = TypeVar("BuilderT", bound=EnvelopeBuilder)


class SimulatedProcess(ABC, Generic[BuilderT]):
    """One Codex process: plans an episode of facts at a time and hands them out.

    The helpers below draw from ``rng`` in a fixed order: the generator's output for a
    seed depends on it.
    """

    #: The process's fact builder, set by the subclass (it draws its originator).
    builder: BuilderT

    def __init__(self, name: str, rng: random.Random, config: GeneratorConfig) -> None:
        self.name = name
        self.rng = rng
        self.config = config
        self.duplicate_rate = config.duplicate_rate
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

    # -- episodes both contracts share -------------------------------------------------

    def _start(self, account: int) -> None:
        """The process starts within a minute of the configured start, signed in to
        ChatGPT with ``account`` (the last of several accounts is a FedRAMP one)."""
        config = self.config
        self.builder.now_ms = config.start_ms + self.rng.randrange(60_000)
        self.builder.auth = {
            "kind": "chatgpt",
            "account_id": f"acct-{account:03d}",
            "is_fedramp": account == config.accounts - 1 and config.accounts > 1,
        }

    def _begin_episode(self, capabilities: Sequence[Any]) -> None:
        """A new pace for the episode; at the first one, one or two connections
        initialize (``capabilities``: the ``params.capabilities`` to draw from)."""
        b, rng = self.builder, self.rng
        b.step_ms = rng.choice([50, 200, 1000, 3000])
        if self.connections:
            return
        for conn in range(1, 1 + rng.choice([1, 1, 2])):
            self.connections.append(conn)
            self.queue.append(
                b.initialize(
                    conn,
                    client_name=rng.choice(["codex-tui", "codex-vscode"]),
                    product_client_id=rng.choice(["codex-tui", "codex_vscode"]),
                    capabilities=rng.choice(capabilities),
                    rpc_transport=rng.choice(["stdio", "websocket"]),
                )
            )

    def _open_turn(self, conn: int, thread_id: str, models: Sequence[str]) -> tuple[str, int, str]:
        """A ``turn/start`` request, its response and ``turn/started``; returns the turn's
        id, its number of input images and its model."""
        b, rng, q = self.builder, self.rng, self.queue
        turn_id = self.next_id("tu")
        rid: int | str = self.counter if rng.random() < 0.8 else f"req-{self.counter}"
        images = rng.choices([0, 1, 2], [6, 3, 1])[0]
        model = rng.choice(models)
        q.append(b.turn_start_request(conn, rid, thread_id, images=images))
        q.append(b.turn_start_response(conn, rid, turn_id))
        q.append(b.turn_started(turn_id, thread_id, started_at=b.now_ms // 1000))
        return turn_id, images, model

    def _close_turn(self, turn_id: str, thread_id: str, status: str, error_info: Any) -> None:
        """``turn/completed`` a few seconds on, with its status and error."""
        b = self.builder
        self.queue.append(
            b.turn_completed(
                turn_id,
                thread_id,
                status=status,
                error_info=error_info,
                completed_at=b.now_ms // 1000 + 5,
                duration_ms=self.rng.randrange(500, 90_000),
            )
        )

    def _steer(self, conn: int, thread_id: str, turn_id: str, rejections: Sequence[Any]) -> None:
        """A steer of the turn, accepted or rejected (``rejections``: its error types)."""
        b, rng, q = self.builder, self.rng, self.queue
        steer_rid = f"steer-{self.counter}"
        q.append(
            b.turn_steer_request(conn, steer_rid, thread_id, turn_id, images=rng.choice([0, 1]))
        )
        if rng.random() < 0.7:
            q.append(b.turn_steer_response(conn, steer_rid, turn_id))
        else:
            q.append(b.error_response(conn, steer_rid, rng.choice(rejections)))

    def _repeats(self, most: int) -> int:
        """How many times a use happens in its turn: once, or (as upstream repeats
        them) up to ``most`` times."""
        rng = self.rng
        return 1 + (rng.random() < self.config.repeat_use_rate) * rng.randrange(1, most)

    def _mention_apps(
        self, connectors: Sequence[tuple[str | None, str | None]], thread_id: str, turn_id: str
    ) -> None:
        mentions = (app(c, n, "explicit") for c, n in self.rng.sample(connectors, 2))
        self.queue.append(
            self.builder.app_mentioned(*mentions, turn_id=turn_id, thread_id=thread_id)
        )

    def _use_app(
        self,
        connectors: Sequence[tuple[str | None, str | None]],
        most: int,
        thread_id: str,
        turn_id: str,
    ) -> None:
        connector, name = self.rng.choice(connectors)
        for _ in range(self._repeats(most)):
            self.queue.append(
                self.builder.app_used(
                    connector, app_name=name, turn_id=turn_id, thread_id=thread_id
                )
            )

    def _run_hook(
        self,
        hooks: Sequence[tuple[str, str]],
        statuses: Sequence[str],
        thread_id: str,
        turn_id: str,
    ) -> None:
        event_name, source = self.rng.choice(hooks)
        self.queue.append(
            self.builder.hook_run(
                self.rng.choice(statuses),
                event_name=event_name,
                hook_source=source,
                turn_id=turn_id,
                thread_id=thread_id,
            )
        )
