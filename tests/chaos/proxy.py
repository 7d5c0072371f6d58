"""A TCP proxy on 127.0.0.1 that a test can cut: every open connection dropped and new
ones refused (nothing listens on its port), then restored on the same port.

It runs its own event loop in a daemon thread, so that it keeps forwarding while the
test blocks (``time.sleep``, ``proc.wait``) or runs loops of its own (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_CHUNK = 64 * 1024
_CALL_TIMEOUT_S = 10.0


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port`` until :meth:`cut`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.cuts = 0
        #: Connections accepted since the proxy started (a client that reconnects counts).
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # -- control, from the test's thread ------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Drop every connection (RST) and stop listening: clients see refusals."""
        self._call(self._cut())
        self.cuts += 1

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT_S)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT_S)

    # -- the proxy's own loop -----------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            upstream_r, upstream_w = await asyncio.wait_for(
                asyncio.open_connection(*self.target), _CALL_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            client_w.transport.abort()
            return
        self._open.update((client_w, upstream_w))
        await asyncio.gather(
            _pump(client_r, upstream_w), _pump(upstream_r, client_w), return_exceptions=True
        )
        for writer in (client_w, upstream_w):
            self._open.discard(writer)
            writer.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    writer.transport.abort()  # one side gone: the pair is over


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
