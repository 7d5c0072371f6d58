"""The analytics client for hosts without an event loop.

:class:`SyncAnalyticsClient` runs an :class:`~producers.client.analytics_client.AnalyticsClient` on a
daemon thread with its own event loop. ``track_*`` calls go straight into the client's
thread-safe queue from the caller's thread (no hop through the loop), so they cost the
same as in asyncio hosts and never wait for the network.

In a child forked from the process that built it, the client is a new instance (see
:mod:`producers.client.forks`): the parent's thread does not exist there, so the child
gets its own loop and thread, started by its first fact (or never, if it sends none).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from codex_analytics.contract.versions import ContractId
from producers.client.analytics_client import AnalyticsClient, DeliveryFailure, TrackCalls
from producers.client.envelope import ProducerIdentity
from producers.client.forks import follow_forks, unfollow_forks
from producers.client.settings import ClientSettings
from producers.publishing.transport import FactTransport

log = logging.getLogger("producers.client.sync_client")

#: How long starting the background loop may take (it does not touch the network).
START_TIMEOUT_S = 10.0
#: What close() and flush() wait beyond their own timeout for the loop to answer.
ANSWER_GRACE_S = 5.0


class SyncAnalyticsClient(TrackCalls):
    """Starts at construction; call :meth:`close` (or use ``with``) before exiting."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        identity: ProducerIdentity | None = None,
        transport: FactTransport | None = None,
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
        contract: ContractId | None = None,
    ) -> None:
        """``contract`` overrides ``settings.contract`` (``ANALYTICS_CLIENT_CONTRACT``)."""
        self._client = AnalyticsClient(
            settings,
            identity=identity,
            transport=transport,
            on_delivery_error=on_delivery_error,
            contract=contract,
        )
        self._tracker = self._client._tracker
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._launch_lock = threading.Lock()
        self._launch()
        # This client resets its inner one after a fork, then itself.
        unfollow_forks(self._client)
        follow_forks(self)

    def _launch(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="codex-analytics-client", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        self._call(self._client.start(), timeout=START_TIMEOUT_S)

    def _ensure_running(self) -> None:
        """Start the loop if this (forked) client has none. Called from ``track_*``, so
        it never raises: a failure leaves the facts queued, and close() reports them."""
        try:
            with self._launch_lock:
                if self._loop is None and not self._closed:
                    self._launch()
        except Exception:
            log.exception("analytics client could not start its loop")

    def after_fork_in_child(self) -> None:
        """In a forked child: the inner client becomes a new instance, and the parent's
        loop (whose thread is not here) is left alone; the first fact starts a new one."""
        self._client.after_fork_in_child()
        self._client._inherited.append((self._loop, self._thread))
        self._loop = self._thread = None
        self._launch_lock = threading.Lock()
        if not self._closed:
            self._tracker.wake = self._ensure_running

    @property
    def settings(self) -> ClientSettings:
        return self._client.settings

    def _call(self, coro: Any, *, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is published; False after ``timeout``.
        A ``2026-08`` client sends the ``flush`` fact first (see
        :meth:`AnalyticsClient.flush`)."""
        if self._closed:
            return self._tracker.pending() == 0
        if self._loop is None:  # a forked child that has sent nothing yet
            self._ensure_running()
            if self._loop is None:
                return self._tracker.pending() == 0
        try:
            return bool(self._call(self._client.flush(timeout), timeout=timeout + ANSWER_GRACE_S))
        except TimeoutError:
            return False

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued within ``timeout``, then stop the background thread.
        Returns True when everything was published; never waits much longer than
        ``timeout`` (False then). Safe to call twice."""
        with self._launch_lock:
            if self._closed:
                return self._tracker.pending() == 0
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:  # a forked child that never sent a fact
            return self._client.close_unstarted()
        delivered = False
        try:
            delivered = bool(
                self._call(self._client.close(timeout), timeout=timeout + ANSWER_GRACE_S)
            )
        except TimeoutError:
            log.warning("analytics client did not close within %.1f s", timeout + ANSWER_GRACE_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=ANSWER_GRACE_S)
            if not thread.is_alive():
                loop.close()
        return delivered

    def __enter__(self) -> SyncAnalyticsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
