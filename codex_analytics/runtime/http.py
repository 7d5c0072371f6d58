"""HTTP serving shared by every service: :func:`serve` starts an aiohttp application
on ``HOST:PORT`` (the gateway, the receiver and the health side doors all start that
way), and :class:`ServiceHttp` is the small side door every long-running worker offers:
``/healthz`` and ``/metrics`` (Prometheus text format), on an address of its own.

``health()`` returns ``(healthy, details)``; ``/healthz`` answers 200 or 503 with the
details as JSON, so an orchestrator's probe and a human read the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from codex_analytics.runtime.env import split_host_port
from codex_analytics.runtime.metrics import CONTENT_TYPE

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


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


async def serve(app: web.Application, addr: str) -> Served:
    """Serve ``app`` on ``addr`` (``HOST:PORT``, port 0 picks a free one) until
    :meth:`Served.close`. No access log: the services log what matters themselves."""
    host, port = parse_addr(addr)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = [address for address in runner.addresses if isinstance(address, tuple)]
    return Served(runner, int(bound[0][1]) if bound else port)


class ServiceHttp:
    def __init__(self, health: HealthCheck, metrics: Callable[[], bytes]) -> None:
        self._health = health
        self._metrics = metrics
        self._served: Served | None = None
        self.port: int | None = None

    async def start(self, addr: str) -> int:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._render_metrics)
        self._served = await serve(app, addr)
        self.port = self._served.port
        return self.port

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()
            self._served = None

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, details = self._health()
        body = orjson.dumps({"status": "ok" if healthy else "unhealthy", **details})
        return web.Response(
            body=body, status=200 if healthy else 503, content_type="application/json"
        )

    async def _render_metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self._metrics())
