"""HTTP serving shared by every service: :func:`serve` starts an aiohttp application
on ``HOST:PORT`` (the gateway, the receiver and the health side doors all start that
way), and :class:`HealthEndpoints` are the probes every long-running service answers
the same way (see :mod:`codex_analytics.runtime.health`):

* ``GET /livez``: 200 while the service's event loop stamps its heartbeat, 503 once it
  has not for ``ANALYTICS_HEALTH_STALL_S``; never asks Kafka, the endpoint or the disk;
* ``GET /readyz``: 200 when the service can do its work, 503 with the status
  (``starting``, ``connecting``, ``joining``, ``recovering``, ``unavailable``,
  ``stopping``) and the reason otherwise;
* ``GET /healthz``: the same answer as ``/readyz`` (deprecated: kept for probes
  written before ``/readyz``), with ``Deprecation`` and ``Link`` headers;
* ``GET /metrics``: Prometheus text format.

The gateway adds them to its own application; the workers serve them on an address of
their own: :class:`ServiceHttp` on the service's loop (the sink), or
:class:`ThreadedServiceHttp` on a thread of its own (the stream worker, whose loop
starts only after the topics are created and Faust is built).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from codex_analytics.runtime.env import split_host_port
from codex_analytics.runtime.errors import ConfigError
from codex_analytics.runtime.health import Heartbeat, Liveness, Readiness
from codex_analytics.runtime.metrics import CONTENT_TYPE

#: ``/metrics``: the Prometheus text, or an awaitable of it.
MetricsSource = Callable[[], bytes | Awaitable[bytes]]
#: ``/readyz``: the service's readiness, or an awaitable of it.
ReadinessSource = Callable[[], Readiness | Awaitable[Readiness]]

T = TypeVar("T")

#: How long a threaded side door waits for its thread to bind, or to close.
THREAD_START_S = 10.0
THREAD_STOP_S = 5.0


class ListenError(ConfigError):
    """The address of a listening setting cannot be served: malformed, an unknown host,
    in use, not ours to bind. One line, naming the variable."""

    def __init__(self, setting: str, addr: str, reason: str) -> None:
        super().__init__(f"cannot listen on {setting}={addr}: {reason}")
        self.setting = setting


def metrics_response(body: bytes) -> web.Response:
    """A ``/metrics`` answer: Prometheus text format."""
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


#: ``host:port``, ``:port`` or ``port`` -> (host, port); the settings' address kind
#: checks with the same function.
parse_addr = split_host_port


class Served:
    """A running aiohttp application: the port it listens on (the real one when the
    address asked for port 0) and how to stop it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        await self._runner.cleanup()


async def serve(app: web.Application, addr: str, *, setting: str | None = None) -> Served:
    """Serve ``app`` on ``addr`` (``HOST:PORT``, port 0 picks a free one) until
    :meth:`Served.close`. No access log: the services log what matters themselves.

    With ``setting`` (the variable ``addr`` came from), a malformed address or one that
    cannot be bound raises :class:`ListenError` naming it."""
    try:
        host, port = parse_addr(addr)
    except ValueError as exc:
        if setting is None:
            raise
        raise ListenError(setting, addr, str(exc)) from None
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        if setting is None:
            raise
        raise ListenError(setting, addr, exc.strerror or str(exc)) from None
    except BaseException:
        await runner.cleanup()
        raise
    bound = [address for address in runner.addresses if isinstance(address, tuple)]
    return Served(runner, int(bound[0][1]) if bound else port)


class HealthEndpoints:
    """``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` of one service.

    ``readiness`` is called per request on the serving loop: it must be cheap, and safe
    to call there (a threaded side door asks the service's loop through an
    :class:`OwnerLoop`, never touches the service's objects itself)."""

    def __init__(
        self,
        service: str,
        *,
        readiness: ReadinessSource,
        heartbeat: Heartbeat,
        stall_after_s: float,
        metrics: MetricsSource,
    ) -> None:
        self.service = service
        self.readiness = readiness
        self.heartbeat = heartbeat
        self.stall_after_s = stall_after_s
        self._metrics = metrics

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.render_metrics)

    def liveness(self) -> Liveness:
        return Liveness(self.heartbeat.age(), self.stall_after_s)

    async def livez(self, request: web.Request) -> web.Response:
        live = self.liveness()
        return self._answer(live.alive, live.status, live.details())

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = self.readiness()
        if inspect.isawaitable(readiness):
            readiness = await readiness
        assert isinstance(readiness, Readiness)
        return self._answer(readiness.ready, readiness.status, readiness.details)

    async def healthz(self, request: web.Request) -> web.Response:
        """``/readyz`` under its old name (deprecated, RFC 9745 / RFC 8288 headers)."""
        response = await self.readyz(request)
        response.headers["Deprecation"] = "true"
        response.headers["Link"] = '</readyz>; rel="successor-version"'
        return response

    async def render_metrics(self, request: web.Request) -> web.Response:
        try:
            body = self._metrics()
            if inspect.isawaitable(body):
                body = await body
        except AnswerUnavailable as exc:
            return web.Response(status=503, text=f"{exc}\n")
        assert isinstance(body, bytes)
        return metrics_response(body)

    def _answer(self, ok: bool, status: str, details: Any) -> web.Response:
        body = orjson.dumps({"service": self.service, "status": status, "ready": ok, **details})
        return web.Response(body=body, status=200 if ok else 503, content_type="application/json")


class AnswerUnavailable(Exception):
    """What a side door asked of the service's loop cannot be answered now: that loop
    is not running (yet), or did not answer in time. ``/metrics`` answers 503."""


class ServiceHttp:
    """A worker's side door on the loop that runs the worker: when that loop is
    blocked, ``/livez`` does not answer at all, which a probe counts as a failure."""

    def __init__(self, endpoints: HealthEndpoints) -> None:
        self.endpoints = endpoints
        self._served: Served | None = None
        self.port: int | None = None

    async def start(self, addr: str, *, setting: str) -> int:
        app = web.Application()
        self.endpoints.add_routes(app)
        self._served = await serve(app, addr, setting=setting)
        self.port = self._served.port
        return self.port

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()
            self._served = None


class ThreadedServiceHttp:
    """A side door served on a thread and event loop of its own, from before the
    service's own loop exists to after it has closed. Its ``/livez`` answers from the
    heartbeat the service's loop stamps (this thread keeps answering when that loop is
    blocked: the heartbeat's age says so)."""

    def __init__(self, endpoints: HealthEndpoints) -> None:
        self.endpoints = endpoints
        self._door = ServiceHttp(endpoints)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self, addr: str, *, setting: str) -> int:
        """Bind ``addr`` and serve; a :class:`ListenError` is raised here, in the caller."""
        ready = threading.Event()
        outcome: list[int | BaseException] = []
        loop = asyncio.new_event_loop()

        def serve_forever() -> None:
            asyncio.set_event_loop(loop)
            try:
                outcome.append(loop.run_until_complete(self._door.start(addr, setting=setting)))
            except BaseException as exc:  # handed to the caller
                outcome.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._door.stop())
                loop.close()

        thread = threading.Thread(target=serve_forever, name="health-side-door", daemon=True)
        thread.start()
        if not ready.wait(THREAD_START_S):
            raise ListenError(setting, addr, f"not listening after {THREAD_START_S:g} s")
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        self._loop, self._thread, self.port = loop, thread, result
        return result

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(THREAD_STOP_S)


class OwnerLoop:
    """The event loop that owns a service's objects, for a side door on another thread
    that must read them (``/metrics`` callbacks walk dicts the loop mutates; Faust
    builds some objects lazily, on first use): the read runs on that loop, within a
    deadline."""

    def __init__(self, *, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self) -> None:
        """Called on the owning loop, once it runs."""
        self._loop = asyncio.get_running_loop()

    async def call(self, read: Callable[[], T], *, timeout_s: float | None = None) -> T:
        """``read()``, run on the owning loop; :class:`AnswerUnavailable` when that loop
        does not run or does not get to it within ``timeout_s`` (default: the owner's)."""
        within = self.timeout_s if timeout_s is None else timeout_s
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            raise AnswerUnavailable("the worker's event loop is not running (yet)")

        answer: concurrent.futures.Future[T] = concurrent.futures.Future()

        def on_owner() -> None:
            if not answer.set_running_or_notify_cancel():
                return  # the caller gave up meanwhile
            try:
                answer.set_result(read())
            except BaseException as exc:  # handed to the caller
                answer.set_exception(exc)

        try:
            loop.call_soon_threadsafe(on_owner)
        except RuntimeError:  # closed since the check above
            raise AnswerUnavailable("the worker's event loop is not running") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(answer), within)
        except TimeoutError:
            raise AnswerUnavailable(
                f"the worker's event loop did not answer within {within:g} s"
            ) from None
