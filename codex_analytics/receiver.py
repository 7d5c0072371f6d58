"""A stand-in analytics endpoint: records every request and answers as told.

Used by the tests (a real HTTP server on 127.0.0.1) and by the local stack, where it
plays ``chatgpt.com/backend-api``. It answers 200 unless a scripted answer is queued
(``fail_next``) or a rule matches (``fail_when``), and it can tell repeats apart by
their ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from codex_analytics.service_http import parse_addr

EVENTS_PATH = "/codex/analytics-events/events"


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


class Receiver:
    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._script: deque[Answer] = deque()
        self._rule: Callable[[bytes, dict[str, str]], Answer | None] | None = None
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Condition()
        self._keys_seen: set[str] = set()
        #: Events in 2xx requests, a repeated Idempotency-Key counted once (kept as
        #: requests arrive: waiting must not re-parse every body each time).
        self.unique_event_count = 0
        self.port: int | None = None

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
        host, port = parse_addr(addr)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self._script.popleft() if self._script else None
        if answer is None and self._rule is not None:
            answer = self._rule(body, headers)
        answer = answer or Answer(200, b'{"ok":true}')
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
                # Not an events body: recorded, not counted.
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    self.unique_event_count += len(orjson.loads(body)["events"])
        async with self._arrived:
            self._arrived.notify_all()
        if answer.delay:  # recorded first: the server has the batch even if the client is gone
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
