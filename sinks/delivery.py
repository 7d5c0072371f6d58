"""The delivery step: one closed batch to its outcome.

::

    not sendable (too large, undecodable) ─────────────────────▶ events DLQ ─▶ DeadLettered
    gate ─skip─▶ GateSkipped
         ─credential unreadable or invalid─▶ retry (re-read each time); past
                                  credential_wait_s ─▶ events DLQ ─▶ DeadLettered
    deliver ─2xx─▶ Delivered (delivered, or captured)
            ─429/5xx/transport/file error─▶ retry, the lane marked retrying (partition paused)
            ─other 4xx, unsendable, or retries exhausted─▶ events DLQ ─▶ DeadLettered

``BatchDelivery`` returns only when the batch has one of those outcomes; the lane then
records it (``SinkMetrics.record``) and marks the batch done. Attempts and retries are
counted as they happen; the retry lines are rate-limited per partition (one per
``RETRY_LOG_INTERVAL_S``, saying how many were held back).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from tenacity import RetryCallState

from codex_analytics.runtime.retry import LogThrottle

from .auth import Admitted, Skipped, admit, request_headers
from .batching import Batch
from .credentials import CredentialProvider
from .deadletters import DeadLetterQueue, undeliverable
from .destinations import Destination
from .errors import (
    CaptureWriteError,
    CredentialError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    UnsendableRequestError,
)
from .metrics import SinkMetrics
from .outcomes import BatchOutcome, DeadLettered, Delivered, GateSkipped
from .settings import SinkSettings

log = logging.getLogger("codex_analytics.sink")

#: At most one retry line per partition this often (and one per partition and reason
#: for dead letters of a lasting credential problem).
RETRY_LOG_INTERVAL_S = 10.0


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
        self.log_throttle = LogThrottle(RETRY_LOG_INTERVAL_S)

    async def __call__(self, batch: Batch, lane: RetryingLane) -> BatchOutcome:
        count = len(batch.records)
        if not batch.sendable:
            reason, detail = undeliverable(batch, self.settings.limits.max_bytes)
            return await self._dead_letter(lane, batch, reason, detail=detail)
        route = batch.route
        assert route is not None
        try:
            decision: Admitted | Skipped | None = admit(route, self.credentials)
        except CredentialError:
            decision = None  # there, but unusable now: the attempts below wait for it
        if isinstance(decision, Skipped) and not self.ignore_gate:
            return GateSkipped(decision.reason, count)
        key = batch.idempotency_key()
        body = batch.body()
        # While the credential fails: when its outage (shared by the account's batches)
        # will have lasted ``credential_wait_s``. Endpoint failures keep the policy's limits.
        give_up_at = math.inf

        async def attempt() -> None:
            nonlocal give_up_at
            # The credential is resolved again on every attempt: after a 401 the token
            # may have been rotated (secrets dir, auth.json) while we backed off, and a
            # file that could not be read may be readable again.
            try:
                current: Admitted | Skipped | None = admit(route, self.credentials)
            except CredentialError as err:
                if not self.ignore_gate:
                    give_up_at = err.since + self.settings.credential_wait_s
                    raise
                current = None
            give_up_at = math.inf
            if isinstance(current, Skipped) and not self.ignore_gate:
                raise _GateClosed(current)  # the credential is gone: skip, as upstream
            headers = request_headers(current, key) if isinstance(current, Admitted) else {}
            await self._attempt(body, headers)

        started = time.monotonic()
        try:
            await self._with_retries(lane, attempt, deadline=lambda: give_up_at)
        except CredentialError as err:
            return await self._dead_letter_noted(lane, batch, err.reason, str(err))
        except UnsendableRequestError as err:
            return await self._dead_letter_noted(lane, batch, err.reason, str(err))
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
        self,
        lane: RetryingLane,
        attempt: Callable[[], Awaitable[None]],
        *,
        deadline: Callable[[], float] | None = None,
    ) -> None:
        async def before_sleep(state: RetryCallState) -> None:
            lane.mark_retrying(True)
            self.metrics.retries.inc()
            held_back = self.log_throttle.admit(lane.partition)
            if held_back is None:
                return
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "partition %d: %s; retry %d in %.2f s%s",
                lane.partition,
                error,
                state.attempt_number,
                state.upcoming_sleep,
                f" ({held_back} more retries since the last line)" if held_back else "",
            )

        try:
            async for try_ in self.settings.retry.retrying(
                sleep=asyncio.sleep, before_sleep=before_sleep, deadline=deadline
            ):
                with try_:
                    await attempt()
        finally:
            if lane.retrying:
                lane.mark_retrying(False)

    async def _dead_letter_noted(
        self, lane: RetryingLane, batch: Batch, reason: str, detail: str
    ) -> DeadLettered:
        """Dead-letter ``batch`` for a problem of ours (a credential, a request that
        cannot be written) and say so, once per interval per partition and reason:
        ``detail`` names the account and the file, never a secret."""
        outcome = await self._dead_letter(lane, batch, reason, detail=detail)
        held_back = self.log_throttle.admit((lane.partition, reason))
        if held_back is not None:
            log.error(
                "partition %d: %s; %d events dead-lettered to %s as %s%s",
                lane.partition,
                detail,
                len(batch.records),
                self.dead_letters.topic,
                reason,
                f" ({held_back} more batches since the last line)" if held_back else "",
            )
        return outcome

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
