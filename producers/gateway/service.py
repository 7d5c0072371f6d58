"""The HTTP ingest gateway: facts from producers in other languages onto the facts topic.

``POST /v1/facts`` takes one envelope or a JSON-lines batch, validates every line with
the contract codec, publishes the valid ones (keyed by instance id, acknowledged by the
broker) and answers with a result per line:

* 200 every line accepted; 207 some rejected; 400 all rejected (or an empty body);
* 401 a missing or wrong bearer token, when ``ANALYTICS_GATEWAY_TOKEN`` is set;
* 413 a body over ``ANALYTICS_GATEWAY_MAX_BODY_BYTES``;
* 503 with ``Retry-After`` when the broker did not acknowledge the facts in time:
  nothing of the request counts as accepted; send it again (facts repeated by a retry
  are dropped by the stream on their ``(instance_id, seq)``).

A 2xx is sent only after the broker acknowledged every accepted fact of the request.
``GET /healthz`` (the process serves), ``GET /readyz`` (the broker is reachable) and
``GET /metrics`` (Prometheus) complete it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from codex_analytics.runtime.http import Served, metrics_response, parse_addr, serve
from codex_analytics.runtime.kafka import ensure_topics
from codex_analytics.runtime.metrics import ServiceMetrics
from producers.gateway.settings import GatewaySettings
from producers.publishing.ingest import parse_ingest_body
from producers.publishing.records import fact_records
from producers.publishing.transport import (
    FactTransport,
    KafkaFactTransport,
    PublishError,
    send_with_retry,
)

log = logging.getLogger("producers.gateway.service")


class GatewayMetrics(ServiceMetrics):
    PREFIX = "codex_gateway"

    def __init__(self) -> None:
        super().__init__()
        self.requests = self.counter("requests", "Ingest requests, by HTTP status.", ["status"])
        self.facts = self.counter(
            "facts", "Ingested lines, by result (accepted, rejected, unavailable).", ["result"]
        )
        self.rejections = self.counter("rejected_facts", "Rejected lines, by reason.", ["reason"])
        self.publish_failures = self.counter(
            "publish_failures",
            "Requests answered 503 because the broker did not acknowledge in time.",
        )
        self.ready = self.gauge("ready", "1 while the broker is reachable.")
        self.request_seconds = self.histogram(
            "request_seconds",
            "Ingest request time, publishing included.",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.body_bytes = self.counter("body_bytes", "Ingest body bytes received.")


def _json(status: int, doc: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), status=status, content_type="application/json", headers=headers
    )


class Gateway:
    """The ingest application. ``start(addr)`` serves it; ``transport`` is the seam."""

    def __init__(self, settings: GatewaySettings, transport: FactTransport) -> None:
        self.settings = settings
        self.transport = transport
        self.metrics = GatewayMetrics()
        self.ready = False
        self._served: Served | None = None
        self._prober: asyncio.Task[None] | None = None
        self._expected_auth = f"Bearer {settings.token}".encode() if settings.token else None
        self.port: int | None = None

    def app(self) -> web.Application:
        # One byte over the limit is enough to answer 413 without reading the rest.
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post("/v1/facts", self.ingest)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.render_metrics)
        return app

    async def start(self, addr: str | None = None) -> int:
        self._served = await serve(self.app(), addr or self.settings.addr)
        self.port = self._served.port
        self._prober = asyncio.create_task(self._probe_forever(), name="gateway-probe")
        return self.port

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        if self._served is not None:
            await self._served.close()
            self._served = None
        await self.transport.close()

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            log.info("broker %s", "reachable" if ready else "unreachable")
        self.ready = ready
        self.metrics.ready.set(1 if ready else 0)

    async def _probe_forever(self) -> None:
        """Readiness, checked every second: the broker answers a metadata request and
        knows the facts topic (created when missing, e.g. after a memory-only broker
        restarted), so /readyz changes without waiting for a request."""
        timeout = self.settings.publish_timeout_s
        while True:
            try:
                ready = await asyncio.wait_for(self.transport.probe(), timeout)
                if not ready and isinstance(self.transport, KafkaFactTransport):
                    await asyncio.wait_for(
                        ensure_topics(
                            self.transport.bootstrap,
                            {self.settings.facts_topic: self.settings.partitions},
                        ),
                        timeout,
                    )
                    ready = await asyncio.wait_for(self.transport.probe(), timeout)
            except Exception as exc:  # any failure means: not ready
                log.debug("broker probe failed: %s", exc)
                ready = False
            self._set_ready(ready)
            await asyncio.sleep(1.0)

    async def ingest(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await self._ingest(request)
        self.metrics.requests.labels(str(response.status)).inc()
        self.metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    async def _ingest(self, request: web.Request) -> web.Response:
        if self._expected_auth is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._expected_auth):
                return _json(
                    401,
                    {"error": "unauthorized", "detail": "a valid bearer token is required"},
                    {"WWW-Authenticate": "Bearer"},
                )
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._too_large(request.content_length)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        self.metrics.body_bytes.inc(len(body))
        batch = parse_ingest_body(
            body,
            request.headers.get("Content-Type", ""),
            max_line_bytes=self.settings.max_record_bytes,
        )
        for rejection in batch.rejections():
            self.metrics.rejections.labels(rejection.reason or "unknown").inc()
        if not batch.results:
            return _json(400, {"error": "empty", "detail": "the body holds no fact envelope"})
        if batch.facts:
            records = fact_records(
                batch.facts,
                max_facts_per_record=self.settings.max_facts_per_record,
                max_record_bytes=self.settings.max_record_bytes,
            )
            try:
                # Retry inside the request's time: a broker that has just come back
                # often fails the first produce. wait_for bounds a send that hangs.
                timeout = self.settings.publish_timeout_s
                until = time.monotonic() + timeout
                await asyncio.wait_for(
                    send_with_retry(self.transport, records, deadline=lambda: until), timeout
                )
            except (TimeoutError, PublishError) as exc:
                self._set_ready(False)
                self.metrics.publish_failures.inc()
                self.metrics.facts.labels("unavailable").inc(batch.accepted)
                log.warning("facts not acknowledged by the broker: %s", exc or "timeout")
                return _json(
                    503,
                    {
                        "error": "unavailable",
                        "detail": "the broker did not acknowledge the facts; nothing of "
                        "this request was accepted, send it again",
                    },
                    {"Retry-After": str(self.settings.retry_after_s)},
                )
            self._set_ready(True)
        self.metrics.facts.labels("accepted").inc(batch.accepted)
        self.metrics.facts.labels("rejected").inc(batch.rejected)
        status = 200 if not batch.rejected else (207 if batch.accepted else 400)
        return _json(
            status,
            {
                "accepted": batch.accepted,
                "rejected": batch.rejected,
                "results": [r.to_json() for r in batch.results],
            },
        )

    def _too_large(self, size: int | None) -> web.Response:
        limit = self.settings.max_body_bytes
        detail = f"the body exceeds the limit of {limit} bytes"
        if size is not None:
            detail = f"{size} bytes exceeds the limit of {limit} bytes"
        return _json(413, {"error": "too_large", "detail": detail})

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok", "ready": self.ready})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "not ready", "detail": "the broker is not reachable"})

    async def render_metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.metrics.render())


def run_gateway(settings: GatewaySettings, bootstrap: str) -> int:
    from codex_analytics.runtime.logs import configure_logging

    configure_logging(settings.log_level)
    return asyncio.run(_main(settings, bootstrap))


async def _main(settings: GatewaySettings, bootstrap: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    transport = KafkaFactTransport(
        bootstrap,
        settings.facts_topic,
        client_id="codex-analytics-gateway",
        max_record_bytes=settings.max_record_bytes,
    )
    gateway = Gateway(settings, transport)
    try:
        port = await gateway.start()
    except OSError as exc:
        print(f"gateway: cannot listen on {settings.addr}: {exc}", file=sys.stderr)
        return 2
    print(
        f"gateway: POST http://{parse_addr(settings.addr)[0]}:{port}/v1/facts -> Kafka "
        f"{bootstrap} topic {settings.facts_topic}; auth "
        f"{'bearer token' if settings.token else 'off'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await gateway.stop()
    return 0
