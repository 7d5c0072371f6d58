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
counted as they happen. Its log lines repeat per batch, so they are rate-limited
(:class:`~codex_analytics.runtime.log_repeats.RepeatedLines`, ``repeated=N`` and summed
``events`` as fields): retries one line per partition per ``RETRY_LOG_INTERVAL_S``, dead
letters one per partition and reason as often, and the auth gate's skips one per reason
per ``GATE_SKIP_LOG_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from tenacity import RetryCallState

from codex_analytics.contract import join_batch
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.runtime.log_repeats import RepeatedLines

from .auth import SkipReason, request_headers, resolve
from .batching import Batch, idempotency_key
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
from .gate import GatePlan, plan_batch
from .metrics import SinkMetrics
from .outcomes import BatchOutcome, DeadLettered, Delivered, GateCounts, GateSkipped
from .settings import SinkSettings

log = logging.getLogger("codex_analytics.sink")

#: At most one retry line per partition this often, and one dead-letter line per
#: partition and reason.
RETRY_LOG_INTERVAL_S = 10.0
#: At most one line per skip reason this often, with the events skipped since the last.
GATE_SKIP_LOG_INTERVAL_S = 60.0


class RetryingLane(Protocol):
    """What the delivery step needs of a batch's lane: its partition (for logs), a flag
    to raise while it retries, so that the worker pauses the partition, and the request
    slot an attempt holds while its request is open (never across a backoff)."""

    @property
    def partition(self) -> int: ...

    @property
    def request_slot(self) -> AbstractAsyncContextManager[None]: ...

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
        self.log_lines = RepeatedLines(log, RETRY_LOG_INTERVAL_S, summed=("events",))
        self.skip_lines = RepeatedLines(log, GATE_SKIP_LOG_INTERVAL_S, summed=("events",))

    def flush_logs(self) -> None:
        """Log the lines held back (when the worker stops)."""
        self.log_lines.flush()
        self.skip_lines.flush()

    async def __call__(self, batch: Batch, lane: RetryingLane) -> BatchOutcome:
        if not batch.sendable:
            reason, detail = undeliverable(batch, self.settings.limits.max_bytes)
            return await self._dead_letter(lane, batch, reason, detail=detail)
        route = batch.route
        assert route is not None
        try:
            plan: GatePlan | None = self._plan(batch, route)
        except CredentialError:
            plan = None  # there, but unusable now: the attempts below wait for it
        if plan is not None and not plan.send:
            return self._skipped(plan, route)
        # What is sent, its body and key: the gate's plan, resolved again before every
        # attempt (it can change with the credential; the body and key follow it).
        sending = plan if plan is not None else None
        records = plan.send if plan is not None else tuple(batch.records)
        key = idempotency_key(records)
        body = join_batch([r.event_json for r in records])
        # While the credential fails: when its outage (shared by the account's batches)
        # will have lasted ``credential_wait_s``. Endpoint failures keep the policy's limits.
        give_up_at = math.inf

        async def attempt() -> None:
            nonlocal give_up_at, sending, records, key, body
            # The credential is resolved again on every attempt: after a 401 the token
            # may have been rotated (secrets dir, auth.json) while we backed off, and a
            # file that could not be read may be readable again.
            try:
                current = self._plan(batch, route, sending)
            except CredentialError as err:
                if not self.ignore_gate:
                    give_up_at = err.since + self.settings.credential_wait_s
                    raise
                current = plan_batch(batch.records, route, None, ignore_gate=True)
            give_up_at = math.inf
            if not current.send:
                raise _GateClosed(current)  # the credential is gone: skip, as upstream
            if current.send is not records and [r.offset for r in current.send] != [
                r.offset for r in records
            ]:
                records = current.send
                key = idempotency_key(records)
                body = join_batch([r.event_json for r in records])
            sending = current
            admitted = current.admitted
            headers = request_headers(admitted, key) if admitted is not None else {}
            async with lane.request_slot:
                await self._attempt(body, headers)

        started = time.monotonic()
        try:
            await self._with_retries(lane, attempt, deadline=lambda: give_up_at)
        except (CredentialError, UnsendableRequestError) as err:
            # A problem of ours: the detail names the account and the file, never a secret.
            return await self._dead_letter(
                lane, batch, err.reason, detail=str(err), level=logging.ERROR
            )
        except PermanentDeliveryError as err:
            return await self._dead_letter(
                lane,
                batch,
                f"http_{err.status}",
                detail=str(err),
                extra=[("http.status", str(err.status).encode()), ("http.body", err.body)],
                response_body=err.body[:200].decode("utf-8", "replace"),
            )
        except _GateClosed as closed:
            return self._skipped(closed.plan, route)
        except RetryableDeliveryError as err:  # only when a retry deadline is configured
            return await self._dead_letter(lane, batch, "retries_exhausted", detail=str(err))
        skipped = sending.skipped if sending is not None else ()
        self._log_skips(skipped, route)
        return Delivered(
            self.destination.success_outcome,
            len(records),
            len(body),
            time.monotonic() - started,
            skipped,
        )

    def _plan(self, batch: Batch, route: AuthRoute, last: GatePlan | None = None) -> GatePlan:
        """The gate's plan for ``batch`` now (``CredentialError`` passes through):
        ``last`` again when the route's credential is still the one it was made with."""
        credential = resolve(route, self.credentials)
        if last is not None and credential is not None and last.credential is credential:
            return last
        return plan_batch(batch.records, route, credential, ignore_gate=self.ignore_gate)

    def _skipped(self, plan: GatePlan, route: AuthRoute) -> GateSkipped:
        self._log_skips(plan.skipped, route)
        return GateSkipped.of(plan.skipped)

    def _log_skips(self, counts: GateCounts, route: AuthRoute) -> None:
        # Skipping is upstream's rule, but a skip nobody sees is a silent loss when a
        # token was meant to be there: one line per reason and interval says so, with
        # the events skipped since the last. The API-key filter is the kind's rule, not a
        # credential gone missing: counted, not logged.
        for reason, count in counts:
            if reason is SkipReason.API_KEY_FILTERED:
                continue
            self.skip_lines.warning(
                "events skipped by the auth gate (%s)",
                reason.value,
                reason=reason.value,
                events=count,
                account_id=route.account_id,
                destination=self.destination.name,
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
            error = state.outcome.exception() if state.outcome is not None else None
            self.log_lines.warning(
                "partition %d: %s; retry %d in %.2f s",
                lane.partition,
                error,
                state.attempt_number,
                state.upcoming_sleep,
                per=lane.partition,
                partition=lane.partition,
                attempt=state.attempt_number,
                retry_in_s=round(state.upcoming_sleep, 3),
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

    async def _dead_letter(
        self,
        lane: RetryingLane,
        batch: Batch,
        reason: str,
        *,
        detail: str = "",
        extra: list[tuple[str, bytes]] | None = None,
        level: int = logging.WARNING,
        **fields: object,
    ) -> DeadLettered:
        """Dead-letter ``batch`` and say so (one line per partition and reason and
        interval); ``fields`` join the line."""
        letters = self.dead_letters.letters(batch, reason, detail=detail, extra=extra or [])
        await self._with_retries(lane, lambda: self.dead_letters.produce(letters))
        self.log_lines.log(
            level,
            "partition %d: events dead-lettered to %s as %s: %s",
            lane.partition,
            self.dead_letters.topic,
            reason,
            detail,
            per=lane.partition,
            reason=reason,
            partition=lane.partition,
            events=len(batch.records),
            dead_letter_topic=self.dead_letters.topic,
            **fields,
        )
        return DeadLettered(reason, len(batch.records))


class _GateClosed(Exception):
    """The route's credential changed between attempts so that nothing of the batch
    may be sent any more (not retried)."""

    def __init__(self, plan: GatePlan) -> None:
        super().__init__(", ".join(reason.value for reason, _ in plan.skipped))
        self.plan = plan
