"""The analytics client for hosts without an event loop.

:class:`SyncAnalyticsClient` runs an :class:`~producers.client.analytics_client.AnalyticsClient` on a
daemon thread with its own event loop. ``track_*`` calls go straight into the client's
thread-safe queue from the caller's thread (no hop through the loop), so they cost the
same as in asyncio hosts and never wait for the network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from producers.client.analytics_client import AnalyticsClient, DeliveryFailure, TrackCalls
from producers.client.envelope import ProducerIdentity
from producers.client.settings import ClientSettings
from producers.publishing.transport import FactTransport


class SyncAnalyticsClient(TrackCalls):
    """Starts at construction; call :meth:`close` (or use ``with``) before exiting."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        identity: ProducerIdentity | None = None,
        transport: FactTransport | None = None,
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
    ) -> None:
        self._client = AnalyticsClient(
            settings, identity=identity, transport=transport, on_delivery_error=on_delivery_error
        )
        self._tracker = self._client._tracker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="codex-analytics-client", daemon=True
        )
        self._thread.start()
        self._call(self._client.start(), timeout=10.0)
        self._closed = False

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    def _call(self, coro: Any, *, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is published; False after ``timeout``."""
        if self._closed:
            return self._tracker.pending() == 0
        return bool(self._call(self._client.flush(timeout), timeout=timeout + 5.0))

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued within ``timeout``, then stop the background thread.
        Returns True when everything was published. Safe to call twice."""
        if self._closed:
            return self._tracker.pending() == 0
        self._closed = True
        try:
            delivered = bool(self._call(self._client.close(timeout), timeout=timeout + 10.0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5.0)
            if not self._thread.is_alive():
                self._loop.close()
        return delivered

    def __enter__(self) -> SyncAnalyticsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
