"""The HTTP ingest gateway: facts from producers in other languages onto the facts topic.

``POST /v1/facts`` takes one envelope or a JSON-lines batch, validates every line with
the contract codec, publishes the valid ones (keyed by instance id, acknowledged by the
broker) and answers with counts and the first rejected lines (``answers.py``):

* 200 every line accepted; 207 some rejected; 400 all rejected (or an empty body);
  413 / 422 nothing published because the broker refused the records (too large /
  otherwise): permanent, never "retry";
* 401 a missing or wrong bearer token, when ``ANALYTICS_GATEWAY_TOKEN`` is set;
* 413 a body over ``ANALYTICS_GATEWAY_MAX_BODY_BYTES``, or with more lines than
  ``ANALYTICS_GATEWAY_MAX_LINES`` (counted before any line is parsed);
* 429 with ``Retry-After`` when the gateway already handles as many requests or body
  bytes as it may (``admission.py``);
* 503 with ``Retry-After`` when the broker did not acknowledge facts in time: ``resend``
  names their lines (facts repeated by a retry are dropped by the stream on their
  ``(instance_id, seq)``).

A 2xx is sent only after the broker acknowledged every accepted fact of the request.
Memory is bounded per request (body size, line count, the rejections listed) and per
process (requests and body bytes in flight); lines are validated in chunks, between
which the event loop serves other requests. ``GET /livez`` (the event loop runs),
``GET /readyz`` (the broker is reachable and knows the facts topic), ``GET /metrics``
(Prometheus) and ``GET /healthz`` (deprecated: now the same as ``/readyz``) complete it
(:class:`~codex_analytics.runtime.http.HealthEndpoints`, as on every service).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import sys
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web

from codex_analytics.runtime.banner import log_banner
from codex_analytics.runtime.health import (
    CONNECTING,
    READY,
    STOPPING,
    UNAVAILABLE,
    Heartbeat,
    Readiness,
    not_ready,
)
from codex_analytics.runtime.http import HealthEndpoints, ListenError, Served, parse_addr, serve
from codex_analytics.runtime.kafka import KafkaCluster, ensure_topics
from codex_analytics.runtime.kafka_start import KafkaStartError, prepare_topics, start_failed
from codex_analytics.runtime.log_repeats import RepeatedLines
from codex_analytics.runtime.metrics import ServiceMetrics
from codex_analytics.runtime.shutdown import ShutdownDeadline, stop_on_signals, unless_stopped
from producers.gateway import settings as declared
from producers.gateway.admission import Admission
from producers.gateway.answers import Published, ingest_answer, settle, unavailable_answer
from producers.gateway.settings import ADDR, GatewaySettings
from producers.publishing.ingest import (
    JSON_VALUES_PER_LINE,
    BodyCost,
    IngestBatch,
    TooManyElements,
    body_cost,
    body_units,
    validate_unit,
)
from producers.publishing.records import fact_record_groups
from producers.publishing.transport import (
    FactTransport,
    KafkaFactTransport,
    RetryablePublishError,
    publish_each,
)

log = logging.getLogger("producers.gateway.service")
T = TypeVar("T")

#: Lines validated between two yields to the event loop (a few ms of work at most).
VALIDATE_CHUNK = 256

#: :func:`stop_within` gives up at the shutdown timeout and then waits 1 s for the
#: cancellation; past that plus a margin, the process is ended from a thread (75).
STOP_GRACE_S = 3.0


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
        #: The broker probe answered at least once (``connecting`` until then).
        self._probed = False
        self.heartbeat = Heartbeat()
        self.endpoints = HealthEndpoints(
            "gateway",
            readiness=self.readiness,
            heartbeat=self.heartbeat,
            stall_after_s=settings.health_stall_s,
            metrics=self.metrics.render,
        )
        self._served: Served | None = None
        self._prober: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._admission = Admission(settings.max_concurrent_requests, settings.max_inflight_bytes)
        self._expected_auth = f"Bearer {settings.token}".encode() if settings.token else None
        self.port: int | None = None
        #: While the broker is gone every request fails alike: a line per 10 s, counted.
        self._unacknowledged = RepeatedLines(log, 10.0, summed=("facts", "published"))

    def app(self) -> web.Application:
        # One byte over the limit is enough to answer 413 without reading the rest.
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post("/v1/facts", self.ingest)
        self.endpoints.add_routes(app)
        return app

    async def start(
        self, addr: str | None = None, *, setting: str | None = None, probe: bool = True
    ) -> int:
        """Serve on ``addr`` (default ``ANALYTICS_GATEWAY_ADDR``); with ``setting``, an
        address that cannot be served raises ``ListenError`` naming it. ``probe=False``
        leaves the broker probe to :meth:`start_probing` (``/readyz``: ``connecting``)."""
        self._served = await serve(self.app(), addr or self.settings.addr, setting=setting)
        self.port = self._served.port
        self._beating = asyncio.create_task(self.heartbeat.run(), name="gateway-heartbeat")
        if probe:
            self.start_probing()
        return self.port

    def start_probing(self) -> None:
        """Probe the broker every second from now on (readiness)."""
        if self._prober is None:
            self._prober = asyncio.create_task(self._probe_forever(), name="gateway-probe")

    async def stop(self) -> None:
        """Answer the requests in flight (those still waiting for acks get 503 with
        every line to resend), stop serving, flush the producer."""
        self._closing.set()
        for task in (self._prober, self._beating):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._served is not None:
            await self._served.close()
            self._served = None
        self._unacknowledged.flush()
        await self.transport.close()

    def _set_ready(self, ready: bool) -> None:
        self._probed = True
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
                        ensure_topics(self.transport.cluster, self.settings.topic_plan), timeout
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
        # Admitted before the body is read: its bytes count until the answer is sent.
        reserved = limit if request.content_length is None else request.content_length
        if not self._admission.admit(reserved):
            return self._busy()
        try:
            return await self._ingest_admitted(request)
        finally:
            self._admission.release(reserved)

    async def _ingest_admitted(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        self.metrics.body_bytes.inc(len(body))
        content_type = request.headers.get("Content-Type", "")
        cost = body_cost(body, content_type)
        if cost.over(self.settings.max_lines):
            return self._too_many(cost)
        try:
            batch = await self._validate(body, content_type)
        except TooManyElements as exc:
            return _json(413, {"error": "too_many_lines", "detail": f"{exc}; split the body"})
        if not batch.seen:
            return _json(400, {"error": "empty", "detail": "the body holds no fact envelope"})
        published = await self._publish(batch)
        for reason, count in batch.reasons.items():
            self.metrics.rejections.labels(reason).inc(count)
        self.metrics.facts.labels("accepted").inc(published.published)
        self.metrics.facts.labels("rejected").inc(batch.rejected)
        if published.unacknowledged:
            return self._unavailable(batch, published)
        if published.published:
            self._set_ready(True)  # a refused record says nothing about readiness
        status, doc = ingest_answer(batch, published)
        return _json(status, doc)

    async def _publish(self, batch: IngestBatch) -> Published:
        """Publish the batch's facts: retried inside the request's time (a broker that
        has just come back often fails the first produce); a record the broker refuses
        fails its own lines only."""
        if not batch.facts:
            return Published()
        groups = fact_record_groups(
            batch.facts,
            max_facts_per_record=self.settings.max_facts_per_record,
            max_record_bytes=self.settings.max_record_bytes,
        )
        records = [record for record, _ in groups]
        outcomes = await self._unless_closing(
            publish_each(self.transport, records, within=self.settings.publish_timeout_s)
        )
        if outcomes is None:  # stopping: answer now (503, resend all), not be cut off
            outcomes = [RetryablePublishError("the gateway is stopping")] * len(groups)
        return settle(batch, [indices for _, indices in groups], outcomes)

    async def _unless_closing(self, work: Coroutine[Any, Any, T]) -> T | None:
        """``work``'s result, or None (``work`` cancelled) once the gateway stops."""
        task = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait([task, closing], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
        return None

    async def _validate(self, body: bytes, content_type: str) -> IngestBatch:
        """Every line validated, :data:`VALIDATE_CHUNK` at a time: the event loop serves
        other requests (and ``/livez``) between chunks."""
        batch = IngestBatch()
        units = body_units(body, content_type, max_elements=self.settings.max_lines)
        for count, unit in enumerate(units, start=1):
            validate_unit(batch, unit, self.settings.max_record_bytes)
            if count % VALIDATE_CHUNK == 0:
                await asyncio.sleep(0)
        return batch

    def _unavailable(self, batch: IngestBatch, published: Published) -> web.Response:
        # The broker did not answer in time: a fault that waiting may mend.
        self._set_ready(False)
        self.metrics.publish_failures.inc()
        self.metrics.facts.labels("unavailable").inc(len(published.unacknowledged))
        self._unacknowledged.warning(
            "facts not acknowledged by the broker in time: answered 503",
            facts=len(published.unacknowledged),
            published=published.published,
        )
        return _json(
            503,
            unavailable_answer(batch, published),
            {"Retry-After": str(self.settings.retry_after_s)},
        )

    def _too_large(self, size: int | None) -> web.Response:
        limit = self.settings.max_body_bytes
        detail = f"the body exceeds the limit of {limit} bytes"
        if size is not None:
            detail = f"{size} bytes exceeds the limit of {limit} bytes"
        return _json(413, {"error": "too_large", "detail": detail})

    def _too_many(self, cost: BodyCost) -> web.Response:
        limit = self.settings.max_lines
        if cost.unit == "lines":
            error, detail = "too_many_lines", f"{cost.count} lines exceeds the limit of {limit}"
        else:
            error = "too_many_values"
            detail = (
                f"about {cost.count} JSON values exceeds the limit of "
                f"{limit * JSON_VALUES_PER_LINE} ({limit} envelopes)"
            )
        return _json(413, {"error": error, "detail": f"{detail}; split the body"})

    def _busy(self) -> web.Response:
        return _json(
            429,
            {
                "error": "busy",
                "detail": "the gateway is handling as many requests or body bytes as it "
                "may; send this one again later",
            },
            {"Retry-After": str(self.settings.retry_after_s)},
        )

    def readiness(self) -> Readiness:
        """Ready while the broker answers and knows the facts topic (probed every
        second, and by every publish)."""
        details = {"facts_topic": self.settings.facts_topic}
        if self._closing.is_set():
            return not_ready(STOPPING, **details)
        if self.ready:
            return Readiness(READY, details)
        if not self._probed:
            return not_ready(CONNECTING, "reaching the broker", **details)
        return not_ready(
            UNAVAILABLE, "the broker is not reachable, or the facts topic is missing", **details
        )


def run_gateway(
    settings: GatewaySettings,
    cluster: KafkaCluster,
    *,
    addr_from: str = ADDR.name,
) -> int:
    """The gateway's exit status; ``addr_from`` names where ``settings.addr`` came from
    (the variable, or ``--addr``) in the one line an unusable address gives (exit 2)."""
    from codex_analytics.runtime.logs import configure_logging

    configure_logging(settings.log_level)
    return asyncio.run(_main(settings, cluster, addr_from))


async def _main(settings: GatewaySettings, cluster: KafkaCluster, addr_from: str) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop, ShutdownDeadline(settings.shutdown_timeout_s, grace_s=STOP_GRACE_S))
    transport = KafkaFactTransport(
        cluster,
        settings.facts_topic,
        client_id="codex-analytics-gateway",
        max_record_bytes=settings.max_record_bytes,
    )
    gateway = Gateway(settings, transport)
    try:
        port = await gateway.start(setting=addr_from, probe=False)
    except ListenError as exc:
        print(f"gateway: {exc}", file=sys.stderr, flush=True)
        await transport.close()
        return 2
    _banner(settings, cluster, port)
    try:
        # Serving already (/readyz says 503 meanwhile): wait for the cluster
        # (ANALYTICS_KAFKA_WAIT_S) and create the facts topic when missing.
        started, _ = await unless_stopped(
            stop, prepare_topics(cluster, settings.topic_plan, within=cluster.start_wait_s)
        )
        if started:
            gateway.start_probing()
        await stop.wait()
    except KafkaStartError as exc:
        return start_failed("gateway", exc)
    finally:
        await stop_within(gateway, settings.shutdown_timeout_s)
    return 0


def _banner(settings: GatewaySettings, cluster: KafkaCluster, port: int) -> None:
    host = parse_addr(settings.addr)[0]
    auth = "bearer token" if settings.token else "off"
    log_banner(
        "gateway",
        f"gateway: POST http://{host}:{port}/v1/facts -> Kafka {cluster.bootstrap} topic "
        f"{settings.facts_topic}; auth {auth}",
        declared.SETTINGS,
        cluster=cluster,
        facts_topic=settings.facts_topic,
        addr=f"{host}:{port}",
        auth=auth,
    )


async def stop_within(gateway: Gateway, within: float) -> None:
    """Stop the gateway (answer the requests in flight, flush the producer) within
    ``within`` s, then give up: an unreachable broker must not hold the process. Facts
    still unacknowledged then belong to requests that were not answered 2xx, so their
    senders send them again."""
    stopping = asyncio.ensure_future(gateway.stop())
    done, _ = await asyncio.wait({stopping}, timeout=within)
    if not done:
        log.warning("gave up stopping cleanly after %g s (broker unreachable?)", within)
        stopping.cancel()
        await asyncio.wait({stopping}, timeout=1.0)
