"""The stream worker's probes, from the first second of the process to its last.

The worker's own event loop (Faust's) starts late: the topics are created first (on a
loop of their own), Faust is imported and built, and only then does its loop run the
group join and the changelog recovery; app tasks run only after recovery. So the side
door (``ANALYTICS_STREAM_HEALTH_ADDR``) is served on a thread of its own
(:class:`~codex_analytics.runtime.http.ThreadedServiceHttp`), opened before anything
else, and it never touches the worker's objects:

* readiness is asked of the worker's loop (``StreamWorker.readiness`` runs there) with
  a short deadline; before that loop runs, or when it does not answer in time, it is
  what the process posted last: its phase, or what the heartbeat last published;
* liveness is the heartbeat's age; whichever loop the process is running stamps it;
* ``/metrics`` is rendered on the worker's loop (its callbacks read dicts that loop
  mutates), within a deadline; before that loop runs it answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from codex_analytics.runtime.health import (
    CONNECTING,
    JOINING,
    STARTING,
    UNAVAILABLE,
    Heartbeat,
    Readiness,
    ReadinessBoard,
    not_ready,
)
from codex_analytics.runtime.http import (
    AnswerUnavailable,
    HealthEndpoints,
    OwnerLoop,
    ThreadedServiceHttp,
)

T = TypeVar("T")

#: How long ``/readyz`` waits for the worker's loop before it answers with the state
#: last published (well inside a Kubernetes probe's default 1 s timeout).
ASK_LOOP_S = 0.5


class StreamHealth:
    def __init__(self, *, stall_after_s: float) -> None:
        self.heartbeat = Heartbeat()
        self.board = ReadinessBoard(not_ready(STARTING))
        self._owner = OwnerLoop()
        self._render: Callable[[], bytes] | None = None
        self._readiness: Callable[[], Readiness] | None = None
        self.endpoints = HealthEndpoints(
            "stream",
            readiness=self._current,
            heartbeat=self.heartbeat,
            stall_after_s=stall_after_s,
            metrics=self._metrics,
        )
        self._door: ThreadedServiceHttp | None = None

    def open(self, addr: str, setting: str) -> int:
        """Serve the probes on ``addr``; raises ``ListenError`` naming ``setting``."""
        self._door = ThreadedServiceHttp(self.endpoints)
        return self._door.start(addr, setting=setting)

    def close(self) -> None:
        if self._door is not None:
            self._door.stop()
            self._door = None

    def connecting(self, step: Awaitable[T]) -> Awaitable[T]:
        """``step`` (waiting for the broker, creating the topics) posted as
        ``connecting``, with the heartbeat stamped beside it; to run on a loop of its
        own. ``joining`` is posted once it is done."""
        self.board.post(not_ready(CONNECTING))

        async def beating() -> T:
            beat = asyncio.ensure_future(self.heartbeat.run())
            try:
                return await step
            finally:
                beat.cancel()
                self.heartbeat.stamp()
                self.board.post(not_ready(JOINING, "starting the Faust worker"))

        return beating()

    def follow(
        self, readiness: Callable[[], Readiness], render: Callable[[], bytes]
    ) -> Callable[[], Awaitable[None]]:
        """The coroutine to run on the worker's loop from its first moment: it stamps
        the heartbeat and publishes ``readiness()``, and lets ``/readyz`` and
        ``/metrics`` ask that loop."""

        def checked() -> Readiness:
            try:
                return readiness()
            except Exception as exc:  # a bug here must not stop the heartbeat
                return not_ready(UNAVAILABLE, f"readiness check failed: {exc!r}")

        async def run() -> None:
            self._owner.attach()
            self._readiness, self._render = checked, render
            await self.heartbeat.run(lambda: self.board.post(checked()))

        return run

    async def _current(self) -> Readiness:
        check = self._readiness
        if check is not None:
            # Not running any more, or busy: what it published last.
            with contextlib.suppress(AnswerUnavailable):
                self.board.post(await self._owner.call(check, timeout_s=ASK_LOOP_S))
        return self.board.read()

    async def _metrics(self) -> bytes:
        render = self._render
        if render is None:
            raise AnswerUnavailable("the stream worker is starting: no metrics yet")
        return await self._owner.call(render)
