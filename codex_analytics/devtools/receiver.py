"""A stand-in analytics endpoint: records every request and answers as told.

Used by the tests (a real HTTP server on 127.0.0.1) and by the local stack, where it
plays ``chatgpt.com/backend-api``. It answers 200 unless a scripted answer is queued
(``fail_next``) or a rule matches (``fail_when``), and it can tell repeats apart by
their ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.core import Metric

from codex_analytics.devtools.receiver_checks import Accepted, Refusal, check_request
from codex_analytics.runtime.config import (
    Setting,
    address,
    declare,
    file_path,
    integer,
    number,
    text,
)
from codex_analytics.runtime.http import Served, metrics_response, serve
from codex_analytics.runtime.metrics import ServiceMetrics


class ReceiverMetrics(ServiceMetrics):
    """Read from the receiver's own counts on every scrape."""

    PREFIX = "codex_receiver"

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()

        def build() -> Iterable[Metric]:
            by_status: dict[str, int] = {}
            for request in receiver.requests:
                by_status[str(request.status)] = by_status.get(str(request.status), 0) + 1
            yield self.counts("uploads", "Uploads answered, by status.", "status", by_status)
            yield self.total(
                "stored_batches",
                "First-seen batches stored (a repeated Idempotency-Key excluded).",
                receiver.stored_batches,
            )
            yield self.total(
                "stored_events",
                "Events of first-seen batches (a repeated Idempotency-Key excluded).",
                receiver.unique_event_count,
            )
            yield self.counts(
                "stored_events_by_contract",
                "Events of stored batches, by the contract whose model accepts them "
                "(2026-06, 2026-08, or both).",
                "contract",
                dict(receiver.events_by_contract),
            )

        self.at_scrape(build)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (a slow endpoint).
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    at: float  # time.monotonic() when the request arrived
    wall_ms: int  # the wall clock then, in ms (to compare with Kafka record timestamps)
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the receiver answered

    @property
    def events(self) -> list[Any]:
        events: list[Any] = orjson.loads(self.body)["events"]
        return events

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


# The receiver command's variables, declared once (:mod:`codex_analytics.runtime.config`);
# its flags of the same names win over them.
_RECEIVER = ("receiver",)
ADDR = declare(
    "ANALYTICS_RECEIVER_ADDR",
    address(),
    "127.0.0.1:8090",
    help="listen address (`--addr` wins)",
    used_by=_RECEIVER,
)
STORE = declare(
    "ANALYTICS_RECEIVER_STORE",
    file_path(),
    None,
    help="JSON-lines file of accepted batches (`--store` wins)",
    used_by=_RECEIVER,
    default_note="none (nothing stored)",
)
FAIL_FIRST = declare(
    "ANALYTICS_RECEIVER_FAIL_FIRST",
    integer(minimum=0),
    0,
    help="failure injection: fail the first N uploads (`--fail-first` wins)",
    used_by=_RECEIVER,
)
FAIL_EVERY = declare(
    "ANALYTICS_RECEIVER_FAIL_EVERY",
    integer(minimum=0),
    0,
    help="failure injection: then fail every K-th upload (`--fail-every` wins)",
    used_by=_RECEIVER,
)
FAIL_STATUS = declare(
    "ANALYTICS_RECEIVER_FAIL_STATUS",
    integer(minimum=100),
    503,
    help="status of a failed upload (`--fail-status` wins)",
    used_by=_RECEIVER,
)
RETRY_AFTER = declare(
    "ANALYTICS_RECEIVER_RETRY_AFTER",
    text("seconds"),
    None,
    help="`Retry-After` of a failed upload (`--retry-after` wins)",
    used_by=_RECEIVER,
    default_note="none",
)
DELAY_S = declare(
    "ANALYTICS_RECEIVER_DELAY_S",
    number(minimum=0.0),
    0.0,
    help="wait this long before every answer (`--delay` wins)",
    used_by=_RECEIVER,
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    ADDR,
    STORE,
    FAIL_FIRST,
    FAIL_EVERY,
    FAIL_STATUS,
    RETRY_AFTER,
    DELAY_S,
)


@dataclass(frozen=True, slots=True)
class Faults:
    """Failure injection for the receiver command: the first ``first`` uploads, and then
    every ``every``-th one, get ``status`` (with ``Retry-After`` when set); every answer
    waits ``delay`` seconds."""

    status: int = FAIL_STATUS.default
    first: int = FAIL_FIRST.default
    every: int = FAIL_EVERY.default
    retry_after: str | None = RETRY_AFTER.default
    delay: float = DELAY_S.default

    def answer_for(self, number: int) -> Answer | None:
        """The scripted answer of the ``number``-th upload (1-based), if any."""
        failing = number <= self.first or (
            self.every > 0 and (number - self.first) % self.every == 0
        )
        if not failing:
            return None
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        body = orjson.dumps({"error": "injected", "status": self.status})
        return Answer(self.status, body, headers, self.delay)


class Receiver:
    """Records every request. Bare (the tests), it answers 200 unless told otherwise.

    As the local stack's endpoint (``codex-analytics receiver``) it also checks each
    upload like the real endpoint (``validate``: path, headers, every event against the
    contract), keeps each first-seen ``Idempotency-Key``'s batch in ``store`` (JSON
    lines; repeats are answered 200 and not stored again), applies ``faults``, and
    serves ``GET /received`` (the stored batches), ``GET /healthz`` and ``GET /metrics``.
    """

    def __init__(
        self,
        *,
        validate: bool = False,
        require_auth: bool = True,
        store: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.validate = validate
        self.require_auth = require_auth
        self.store = store
        self.faults = faults
        self.stored_batches = 0
        self._uploads = 0
        self.requests: list[ReceivedRequest] = []
        self._script: deque[Answer] = deque()
        self._rule: Callable[[bytes, dict[str, str]], Answer | None] | None = None
        self._served: Served | None = None
        self._arrived = asyncio.Condition()
        self._keys_seen: set[str] = set()
        #: Events in 2xx requests, a repeated Idempotency-Key counted once (kept as
        #: requests arrive: waiting must not re-parse every body each time).
        self.unique_event_count = 0
        #: Events of stored batches by the contract whose model accepts them.
        self.events_by_contract: dict[str, int] = {}
        self.port: int | None = None
        self._metrics_registry: ReceiverMetrics | None = None  # made on the first scrape

    # -- control -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every request (the script and rule stay)."""
        self.requests.clear()
        self._keys_seen.clear()
        self.unique_event_count = 0

    def fail_next(self, *answers: Answer) -> None:
        """Answer the next requests with these, in order, then 200 again."""
        self._script.extend(answers)

    def fail_when(self, rule: Callable[[bytes, dict[str, str]], Answer | None] | None) -> None:
        """Answer with ``rule(body, headers)`` (lower-cased header names) whenever it
        returns one; checked after the script."""
        self._rule = rule

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/backend-api/"

    def accepted(self) -> list[ReceivedRequest]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def accepted_events(self, *, unique: bool = False) -> list[Any]:
        """Events of 2xx requests; with ``unique``, repeats of a key count once."""
        seen: set[str | None] = set()
        events: list[Any] = []
        for request in self.accepted():
            key = request.idempotency_key
            if unique and key is not None:
                if key in seen:
                    continue
                seen.add(key)
            events.extend(request.events)
        return events

    async def wait_for_events(self, count: int, *, within: float) -> list[Any]:
        """Wait until the 2xx requests hold at least ``count`` events (unique keys)."""
        deadline = time.monotonic() + within
        async with self._arrived:
            while self.unique_event_count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
        return self.accepted_events(unique=True)

    # -- server ------------------------------------------------------------------------

    async def start(self, addr: str = "127.0.0.1:0") -> Receiver:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._served = await serve(app, addr)
        self.port = self._served.port
        return self

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()
            self._served = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method == "GET" and self.validate:
            served = self._serve(request.path)
            if served is not None:
                return served
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self._script.popleft() if self._script else None
        if answer is None and self._rule is not None:
            answer = self._rule(body, headers)
        checked: Refusal | Accepted | None = None
        if answer is None and self.faults is not None:
            self._uploads += 1
            answer = self.faults.answer_for(self._uploads)
        if answer is None and self.validate:
            checked = check_request(
                request.method, request.path, headers, body, require_auth=self.require_auth
            )
            if isinstance(checked, Refusal):
                answer = Answer(checked.status, checked.body(), {}, self._delay)
        answer = answer or Answer(200, b'{"ok":true}', {}, self._delay)
        self.requests.append(
            ReceivedRequest(
                at=time.monotonic(),
                wall_ms=time.time_ns() // 1_000_000,
                method=request.method,
                path=request.path,
                headers=headers,
                body=body,
                status=answer.status,
            )
        )
        if 200 <= answer.status < 300:
            key = headers.get("idempotency-key")
            if key is None or key not in self._keys_seen:
                if key is not None:
                    self._keys_seen.add(key)
                if isinstance(checked, Accepted) and self.store is not None:
                    self._append(key, headers, checked)
                # Not an events body: recorded, not counted.
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    self.unique_event_count += len(orjson.loads(body)["events"])
        async with self._arrived:
            self._arrived.notify_all()
        if answer.delay:  # recorded first: the server has the batch even if the client is gone
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    @property
    def _delay(self) -> float:
        return self.faults.delay if self.faults is not None else 0.0

    def _append(self, key: str | None, headers: dict[str, str], batch: Accepted) -> None:
        line = orjson.dumps(
            {
                "received_at_ms": time.time_ns() // 1_000_000,
                "idempotency_key": key,
                "account_id": headers.get("chatgpt-account-id"),
                "fedramp": headers.get("x-openai-fedramp") == "true",
                "events": batch.events,
                # Which contract's model accepts each event (the body does not say).
                "contracts": batch.contracts,
            }
        )
        assert self.store is not None
        with open(self.store, "ab") as out:
            out.write(line + b"\n")
        self.stored_batches += 1
        for contract, count in batch.by_contract().items():
            self.events_by_contract[contract] = self.events_by_contract.get(contract, 0) + count

    def _metrics(self) -> bytes:
        if self._metrics_registry is None:
            self._metrics_registry = ReceiverMetrics(self)
        return self._metrics_registry.render()

    def _serve(self, path: str) -> web.Response | None:
        if path == "/healthz":
            return web.json_response({"status": "ok", "stored_batches": self.stored_batches})
        if path == "/metrics":
            return metrics_response(self._metrics())
        if path == "/received":
            body = b""
            if self.store is not None and os.path.exists(self.store):
                with open(self.store, "rb") as stored:
                    body = stored.read()
            return web.Response(body=body, content_type="application/x-ndjson")
        return None
