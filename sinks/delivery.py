"""The delivery step: one closed batch to its outcome.

::

    not sendable (too large, undecodable) ─────────────────────▶ events DLQ ─▶ DeadLettered
    gate ─skip─▶ GateSkipped
    deliver ─2xx─▶ Delivered (delivered, or captured)
            ─429/5xx/transport/file error─▶ retry, the lane marked retrying (partition paused)
            ─other 4xx, or retries exhausted─▶ events DLQ ─▶ DeadLettered

``BatchDelivery`` returns only when the batch has one of those outcomes; the lane then
records it (``SinkMetrics.record``) and marks the batch done. Attempts and retries are
counted as they happen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from tenacity import RetryCallState

from .auth import Admitted, Skipped, admit, request_headers
from .batching import Batch
from .credentials import CredentialProvider
from .deadletters import DeadLetterQueue, undeliverable
from .destinations import Destination
from .errors import (
    CaptureWriteError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from .metrics import SinkMetrics
from .outcomes import BatchOutcome, DeadLettered, Delivered, GateSkipped
from .settings import SinkSettings

log = logging.getLogger("codex_analytics.sink")


class RetryingLane(Protocol):
    """What the delivery step needs of a batch's lane: its partition (for logs), and a
    flag to raise while it retries, so that the worker pauses the partition."""

    @property
    def partition(self) -> int: ...

    @property
    def retrying(self) -> bool: ...

    def mark_retrying(self, retrying: bool) -> None: ...


class BatchDelivery:
    """Deliver, skip or dead-letter one batch, retrying until it is one of those."""

    def __init__(
        self,
        settings: SinkSettings,
        destination: Destination,
        credentials: CredentialProvider,
        metrics: SinkMetrics,
        dead_letters: DeadLetterQueue,
    ) -> None:
        self.settings = settings
        self.destination = destination
        self.credentials = credentials
        self.metrics = metrics
        self.dead_letters = dead_letters
        #: The test switch that captures what the gate would skip; never for HTTP.
        self.ignore_gate = settings.capture_ignores_auth and destination.may_ignore_auth

    async def __call__(self, batch: Batch, lane: RetryingLane) -> BatchOutcome:
        count = len(batch.records)
        if not batch.sendable:
            reason, detail = undeliverable(batch, self.settings.limits.max_bytes)
            return await self._dead_letter(lane, batch, reason, detail=detail)
        route = batch.route
        assert route is not None
        decision = admit(route, self.credentials)
        if isinstance(decision, Skipped) and not self.ignore_gate:
            return GateSkipped(decision.reason, count)
        key = batch.idempotency_key()
        body = batch.body()

        async def attempt() -> None:
            # The credential is resolved again on every attempt: after a 401 the token
            # may have been rotated (secrets dir, auth.json) while we backed off.
            current = admit(route, self.credentials)
            if isinstance(current, Skipped) and not self.ignore_gate:
                raise _GateClosed(current)  # the credential is gone: skip, as upstream
            headers = request_headers(current, key) if isinstance(current, Admitted) else {}
            await self._attempt(body, headers)

        started = time.monotonic()
        try:
            await self._with_retries(lane, attempt)
        except PermanentDeliveryError as err:
            outcome = await self._dead_letter(
                lane,
                batch,
                f"http_{err.status}",
                detail=str(err),
                extra=[("http.status", str(err.status).encode()), ("http.body", err.body)],
            )
            log.warning(
                "%s: %s; %d events dead-lettered to %s",
                str(err),
                err.body[:200].decode("utf-8", "replace"),
                count,
                self.dead_letters.topic,
            )
            return outcome
        except _GateClosed as closed:
            return GateSkipped(closed.skipped.reason, count)
        except RetryableDeliveryError as err:  # only when a retry deadline is configured
            return await self._dead_letter(lane, batch, "retries_exhausted", detail=str(err))
        return Delivered(
            self.destination.success_outcome, count, len(body), time.monotonic() - started
        )

    async def _attempt(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            status = await self.destination.deliver(body, headers)
        except CaptureWriteError:
            self.metrics.attempts.labels("capture_error").inc()
            raise
        except DeliveryError as err:
            failed: int | None = getattr(err, "status", None)
            self.metrics.attempts.labels(
                f"{failed // 100}xx" if failed else "transport_error"
            ).inc()
            raise
        self.metrics.attempts.labels(f"{status // 100}xx").inc()

    async def _with_retries(
        self, lane: RetryingLane, attempt: Callable[[], Awaitable[None]]
    ) -> None:
        async def before_sleep(state: RetryCallState) -> None:
            lane.mark_retrying(True)
            self.metrics.retries.inc()
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.upcoming_sleep
            log.warning(
                "partition %d: %s; retry %d in %.2f s",
                lane.partition,
                error,
                state.attempt_number,
                wait,
            )

        try:
            async for try_ in self.settings.retry.retrying(
                sleep=asyncio.sleep, before_sleep=before_sleep
            ):
                with try_:
                    await attempt()
        finally:
            if lane.retrying:
                lane.mark_retrying(False)

    async def _dead_letter(
        self,
        lane: RetryingLane,
        batch: Batch,
        reason: str,
        *,
        detail: str = "",
        extra: list[tuple[str, bytes]] | None = None,
    ) -> DeadLettered:
        letters = self.dead_letters.letters(batch, reason, detail=detail, extra=extra or [])
        await self._with_retries(lane, lambda: self.dead_letters.produce(letters))
        return DeadLettered(reason, len(batch.records))


class _GateClosed(Exception):
    """The route's credential disappeared between attempts (not retried)."""

    def __init__(self, skipped: Skipped) -> None:
        super().__init__(skipped.reason.value)
        self.skipped = skipped
