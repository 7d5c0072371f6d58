"""A TLS endpoint in front of the embedded broker, for testing Kafka over TLS for real.

The embedded broker (Tansu 0.6) speaks plaintext only. :func:`tls_broker` generates a
CA and a server certificate for ``127.0.0.1``/``localhost`` (plus a client certificate
and an unrelated CA, for mTLS and "wrong CA" tests), starts a broker that *advertises*
the TLS endpoint's port (Kafka clients reconnect to the advertised listener they learn
from Metadata: every connection, bootstrap, leader and coordinator, goes through TLS),
and terminates TLS in front of it, forwarding plaintext bytes both ways.

The certificates come from :mod:`tests.pki`. The endpoint runs its own event loop in a daemon thread, like ``tests/chaos/proxy.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from codex_analytics.devtools.broker import EmbeddedBroker
from tests.pki import Pki, make_pki

_CALL_TIMEOUT_S = 10.0


class TlsEndpoint:
    """TLS on ``127.0.0.1:port``, forwarding plaintext to ``127.0.0.1:target_port``.
    The port is bound at construction (so a broker can advertise it before it starts);
    :attr:`target_port` may be set until the first connection."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.target_port = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TlsEndpoint:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forward, sock=self._sock, ssl=self.context),
            self._loop,
        ).result(_CALL_TIMEOUT_S)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(_CALL_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT_S)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        try:
            await asyncio.gather(_pipe(client_r, broker_w), _pipe(broker_r, client_w))
        finally:
            for writer in (client_w, broker_w):
                writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


def server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context


@dataclass(frozen=True, slots=True)
class TlsBroker:
    """An embedded broker reachable through TLS only (its plaintext port is there too,
    for protocol-mismatch tests)."""

    bootstrap: str  # the TLS endpoint
    plaintext: str  # the broker itself
    pki: Pki


@contextlib.contextmanager
def tls_broker(
    directory: Path, *, require_client_cert: bool = False, authentication: bool = False
) -> Iterator[TlsBroker]:
    """``authentication``: the broker behind requires SASL (and, having no users,
    refuses every login: see :class:`EmbeddedBroker`)."""
    pki = make_pki(directory / "pki")
    endpoint = TlsEndpoint(server_context(pki, require_client_cert=require_client_cert))
    broker = EmbeddedBroker(
        log_path=str(directory / "broker.log"),
        advertised_port=endpoint.port,
        authentication=authentication,
    )
    with broker:
        endpoint.target_port = broker.port
        endpoint.start()
        try:
            yield TlsBroker(endpoint.address, broker.bootstrap_servers, pki)
        finally:
            endpoint.stop()
