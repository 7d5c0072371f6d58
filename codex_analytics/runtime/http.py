"""The small HTTP side door every long-running service offers: ``/healthz`` and
``/metrics`` (Prometheus text format), on an address of its own.

``health()`` returns ``(healthy, details)``; ``/healthz`` answers 200 or 503 with the
details as JSON, so an orchestrator's probe and a human read the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def parse_addr(addr: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port`` -> (host, port)."""
    host, _, port = addr.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT, got {addr!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in {addr!r}")
    return (host.strip("[]") or default_host), number


class ServiceHttp:
    def __init__(self, health: HealthCheck, metrics: Callable[[], bytes]) -> None:
        self._health = health
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, addr: str) -> int:
        host, port = parse_addr(addr)
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._render_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, details = self._health()
        body = orjson.dumps({"status": "ok" if healthy else "unhealthy", **details})
        return web.Response(
            body=body, status=200 if healthy else 503, content_type="application/json"
        )

    async def _render_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )
