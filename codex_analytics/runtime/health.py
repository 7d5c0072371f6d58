"""Liveness and readiness, one vocabulary for every service.

Two questions an orchestrator asks, answered separately:

* **Live** (``/livez``): is the process still making progress at all? Only the
  service's own event loop counts: a task on it stamps a :class:`Heartbeat` every
  second, and the process is live unless that stamp is older than
  ``ANALYTICS_HEALTH_STALL_S``. Nothing outside the process is consulted: a dead
  broker, a failing endpoint or a full disk must never get a pod restarted (a restart
  cures none of them, and a restart loop adds a rebalance each time). Consumption that
  stops making progress is not a liveness failure either: it is what a broker outage
  looks like, and restarting cannot tell the two apart; lag alerts report it.
* **Ready** (``/readyz``): can the service do its work now? A :class:`Readiness` with
  a status from :data:`STATUSES`; only ``ready`` answers 200.

Both answer the same JSON shape on every service: ``service``, ``status``, ``ready``
(a boolean), then the service's details.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: The process is up; nothing has been tried yet.
STARTING: Final = "starting"
#: Reaching the broker (metadata, topic creation).
CONNECTING: Final = "connecting"
#: Joining the consumer group, or in a rebalance: no partitions to work on yet.
JOINING: Final = "joining"
#: Reading changelogs back into the state store (the stream worker).
RECOVERING: Final = "recovering"
#: Doing its work.
READY: Final = "ready"
#: It was (or could be) ready, but something it needs fails: ``reason`` says what.
UNAVAILABLE: Final = "unavailable"
#: A stop signal came: finishing the work in flight.
STOPPING: Final = "stopping"

STATUSES: Final = (STARTING, CONNECTING, JOINING, RECOVERING, READY, UNAVAILABLE, STOPPING)

#: How often the heartbeat task stamps (and, for a threaded side door, publishes).
BEAT_EVERY_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class Readiness:
    """One answer to "can the service work now?": a status and details (JSON values)."""

    status: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown readiness status {self.status!r}")

    @property
    def ready(self) -> bool:
        return self.status == READY

    def with_details(self, **details: Any) -> Readiness:
        return Readiness(self.status, {**self.details, **details})


#: What a status says when its caller has nothing more precise.
REASONS: Final = {
    STARTING: "the process is starting",
    CONNECTING: "reaching the broker and creating the topics",
    JOINING: "joining the consumer group (or in a rebalance)",
    RECOVERING: "reading the state changelog back",
    STOPPING: "a stop signal came",
}


def not_ready(status: str, reason: str | None = None, **details: Any) -> Readiness:
    """A readiness that is not ``ready``, saying why in words an operator reads (by
    default the status's :data:`REASONS`)."""
    return Readiness(status, {"reason": reason or REASONS[status], **details})


class Heartbeat:
    """The last time the service's event loop ran a tick of :meth:`run`.

    Stamped by a task on the loop that does the service's work; read from any thread (a
    float attribute: assignment is atomic). A loop that is blocked or wedged stops
    stamping; a busy one stamps late, never not at all."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stamped = clock()

    def stamp(self) -> None:
        self._stamped = self._clock()

    def age(self) -> float:
        """Seconds since the last stamp."""
        return max(0.0, self._clock() - self._stamped)

    async def run(
        self, publish: Callable[[], None] | None = None, *, every_s: float = BEAT_EVERY_S
    ) -> None:
        """Stamp (and ``publish``) every ``every_s`` until cancelled."""
        while True:
            self.stamp()
            if publish is not None:
                publish()
            await asyncio.sleep(every_s)


@dataclass(frozen=True, slots=True)
class Liveness:
    """Whether the loop stamped its heartbeat within ``stall_after_s``."""

    heartbeat_age_s: float
    stall_after_s: float

    @property
    def alive(self) -> bool:
        return self.heartbeat_age_s < self.stall_after_s

    @property
    def status(self) -> str:
        return "alive" if self.alive else "stalled"

    def details(self) -> dict[str, Any]:
        return {
            "heartbeat_age_s": round(self.heartbeat_age_s, 3),
            "stall_after_s": self.stall_after_s,
        }


class ReadinessBoard:
    """Readiness as the service's own loop last published it, for a side door that runs
    on another thread (the stream worker's): that thread never touches the service's
    objects (Faust builds some of them lazily, on first use, on its own loop).

    Before the loop runs, the process posts its phase (:meth:`post`); once it runs, the
    heartbeat publishes a fresh :class:`Readiness` with every stamp."""

    def __init__(self, initial: Readiness | None = None) -> None:
        self._lock = threading.Lock()
        self._current = initial or not_ready(STARTING)
        self._since = time.monotonic()

    def post(self, readiness: Readiness) -> None:
        with self._lock:
            if readiness.status != self._current.status:
                self._since = time.monotonic()
            self._current = readiness

    def read(self) -> Readiness:
        with self._lock:
            current, since = self._current, self._since
        return current.with_details(status_for_s=round(time.monotonic() - since, 1))


class BrokerWatch:
    """Whether the broker answered the service's last metadata probe.

    ``probe`` is one bounded round trip (see :func:`topic_known`); :meth:`run` repeats
    it every ``every_s`` until cancelled. ``reachable`` is None until the first answer.
    A failure is never kept: the next probe decides again."""

    def __init__(
        self,
        probe: Callable[[], Any],
        *,
        every_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._probe = probe
        self.every_s = every_s
        self.timeout_s = timeout_s
        self.reachable: bool | None = None
        self.error: str | None = None

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                known = bool(await self._probe())
        except TimeoutError:
            known, self.error = False, f"no metadata answer within {self.timeout_s:g} s"
        except Exception as exc:  # any failure means: not reachable now
            known, self.error = False, type(exc).__name__
        else:
            self.error = None if known else "the broker does not know the topic"
        self.reachable = known
        return known

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every_s)


async def topic_known(client: Any, topic: str) -> bool:
    """One metadata round trip on an aiokafka client: does the broker answer, and know
    ``topic``? (``force_metadata_update`` is False when no broker answered.)"""
    client.add_topic(topic)
    if not await client.force_metadata_update():
        return False
    return client.cluster.partitions_for_topic(topic) is not None
