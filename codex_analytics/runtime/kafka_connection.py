"""Why a connection to Kafka fails, in one line, and whether waiting can help.

aiokafka's clients hide the cause: a client's ``start()`` logs each bootstrap host's
error and raises ``KafkaConnectionError("Unable to bootstrap from [...]")``, and a TLS
client talking to a plaintext port waits for its whole request timeout. So the cause is
found by :func:`diagnose`: it opens one connection to each bootstrap host exactly as
the clients do (aiokafka's own connection, TLS, ApiVersions, the SASL exchange) within
a deadline, and when that fails looks once more with a bare socket where the answer
is ambiguous (is the port plaintext or TLS? did the broker send a TLS alert?).

:func:`classify` is the pure part: an exception, the cluster and the host to a
:class:`ConnectionFailure` (``Kafka at host:9093: TLS handshake failed: certificate
verify failed: ... (KAFKA_SSL_CA_FILE=/x/ca.pem)``), which is *permanent* when only a
change of configuration can fix it (TLS verification, a protocol mismatch, SASL
credentials or mechanism) and transient otherwise (unreachable, refused, no answer):
the start-up wait retries only those. No line ever holds a password or a token.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from dataclasses import dataclass

from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from codex_analytics.runtime.env import split_bootstrap_server
from codex_analytics.runtime.errors import ConfigError, PermanentError, RetryableError
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget
from codex_analytics.runtime.kafka_security import (
    SECURITY_PROTOCOL,
    SSL_CA_FILE,
    SSL_CERT_FILE,
    SSL_CHECK_HOSTNAME,
    KafkaSecurity,
)

#: What the cluster answers when it knows who we are and will not let us: only a change
#: of credentials or ACLs mends it.
_REFUSALS = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)
#: How long :func:`diagnose` gives one host by default (connect, TLS, ApiVersions, SASL).
DIAGNOSE_TIMEOUT_S = 5.0
_X509_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
# size, then the header: api key 18 (ApiVersions), version 0, correlation id 1, client id ""
_API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 1, 0)


@dataclass(frozen=True, slots=True)
class ConnectionFailure:
    """One host's failure: where, what failed (no secret), and whether it can pass."""

    host: str
    what: str
    permanent: bool

    @property
    def line(self) -> str:
        return f"Kafka at {self.host}: {self.what}"

    def error(self) -> KafkaUnavailableError | KafkaRefusedError:
        """The failure as an exception of the pipeline's tree."""
        if self.permanent:
            return KafkaRefusedError(self)
        return KafkaUnavailableError(self)


class KafkaUnavailableError(RetryableError):
    """Kafka cannot be reached now (unreachable, refused, silent): waiting may help."""

    def __init__(self, failure: ConnectionFailure) -> None:
        super().__init__(failure.line)
        self.failure = failure


class KafkaRefusedError(PermanentError):
    """Kafka refuses this client as configured (TLS, protocol, SASL): waiting cannot help."""

    def __init__(self, failure: ConnectionFailure) -> None:
        super().__init__(failure.line)
        self.failure = failure


def classify(
    cluster: KafkaTarget, exc: BaseException, host: str | None = None
) -> ConnectionFailure:
    """The failure ``exc`` means for a client of ``cluster`` connecting to ``host`` (by
    default the bootstrap list). Pure: it reads the exception and the configuration."""
    kafka = KafkaCluster.of(cluster)
    security = kafka.security
    where = host or kafka.bootstrap
    if isinstance(exc, (KafkaRefusedError, KafkaUnavailableError)):
        return exc.failure
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectionFailure(where, _verify_failed(security, exc), permanent=True)
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailure(where, _tls_failed(security, exc), permanent=True)
    if isinstance(
        exc, SaslAuthenticationFailed | UnsupportedSaslMechanismError | IllegalSaslStateError
    ):
        return ConnectionFailure(where, _sasl_failed(security, exc), permanent=True)
    if isinstance(exc, socket.gaierror):
        return ConnectionFailure(where, f"unknown host ({exc.strerror})", permanent=False)
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionFailure(where, "unreachable (connection refused)", permanent=False)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ConnectionFailure(where, "no answer in time", permanent=False)
    if isinstance(exc, KafkaConnectionError):
        return ConnectionFailure(where, _closed(exc), permanent=False)
    if isinstance(exc, OSError):
        return ConnectionFailure(where, f"unreachable ({exc.strerror or exc})", permanent=False)
    if is_refusal(exc):
        return ConnectionFailure(where, _kafka_error(exc), permanent=True)
    if isinstance(exc, KafkaError):
        return ConnectionFailure(where, _kafka_error(exc), permanent=False)
    if isinstance(exc, ConfigError):
        # A secret file unreadable when a connection was made (a token file a sidecar
        # is rewriting): it names the variable and the path; it may be back soon.
        return ConnectionFailure(where, str(exc), permanent=False)
    if security.uses_sasl and isinstance(exc, KeyError | ValueError):
        # aiokafka's SCRAM client cannot read a server's "e=..." refusal (a KeyError):
        # the exchange failed before the client could tell why.
        return ConnectionFailure(where, _sasl_failed(security, None), permanent=True)
    return ConnectionFailure(where, _kafka_error(exc), permanent=False)


def is_refusal(exc: BaseException) -> bool:
    """The cluster's answer that it will not let us (authentication, authorization)."""
    return isinstance(exc, _REFUSALS)


def describe_connection_failure(cluster: KafkaTarget, exc: BaseException) -> str:
    """``classify(cluster, exc).line``: one line naming the host and what failed."""
    return classify(cluster, exc).line


def is_permanent(cluster: KafkaTarget, exc: BaseException) -> bool:
    """True when waiting cannot help (TLS, protocol or SASL configuration)."""
    return classify(cluster, exc).permanent


async def diagnose(
    cluster: KafkaTarget, *, within: float = DIAGNOSE_TIMEOUT_S
) -> ConnectionFailure | None:
    """Connect to every bootstrap host at once as every client does, all within
    ``within`` seconds; None as soon as one answers (ApiVersions, then SASL if
    configured), else a host's failure (a permanent one first: it is the one to fix)."""
    kafka = KafkaCluster.of(cluster)
    deadline = time.monotonic() + within
    pending = {asyncio.ensure_future(_connect(kafka, host, deadline)) for host in kafka.hosts}
    failures: list[ConnectionFailure] = []
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = task.result()
                if failure is None:
                    return None
                failures.append(failure)
    finally:
        for task in pending:
            task.cancel()
    return next((f for f in failures if f.permanent), failures[0] if failures else None)


async def require_connection(cluster: KafkaTarget, *, within: float = DIAGNOSE_TIMEOUT_S) -> None:
    """Raise :class:`KafkaRefusedError` or :class:`KafkaUnavailableError` (one line)
    unless a bootstrap host accepts a connection as the clients will open it."""
    failure = await diagnose(cluster, within=within)
    if failure is not None:
        raise failure.error()


async def _connect(cluster: KafkaCluster, host: str, deadline: float) -> ConnectionFailure | None:
    from aiokafka.conn import create_conn

    name, port = _split(host)
    options = cluster.client_options()
    options.pop("bootstrap_servers")
    # Most of the time for aiokafka's attempt, the rest for a second look.
    attempt = max(0.1, (deadline - time.monotonic()) * 0.6)
    try:
        connection = await asyncio.wait_for(
            create_conn(name, port, request_timeout_ms=int(attempt * 1000), **options),
            attempt + 0.5,
        )
    except Exception as exc:  # classified below; nothing here is unexpected
        failure = classify(cluster, exc, host)
        return await asyncio.to_thread(_second_look, cluster.security, host, exc, failure, deadline)
    connection.close()
    return None


def _second_look(
    security: KafkaSecurity,
    host: str,
    exc: BaseException,
    failure: ConnectionFailure,
    deadline: float,
) -> ConnectionFailure:
    """Where aiokafka's answer is ambiguous, ask the port with a bare socket once (each
    question within what is left until ``deadline``)."""
    name, port = _split(host)

    def answers(context: ssl.SSLContext | None) -> bool | BaseException:
        return _answers(name, port, context, max(0.1, deadline - time.monotonic()))

    protocol = f"{SECURITY_PROTOCOL.name}={security.protocol}"
    silent = isinstance(exc, TimeoutError | asyncio.TimeoutError)
    closed = isinstance(exc, KafkaConnectionError)
    if not (silent or closed):
        return failure
    plaintext = f"the port speaks plaintext Kafka, not TLS ({protocol})"
    if security.uses_tls and silent and answers(None) is True:
        # A plaintext broker waits for the rest of what it read as a huge request.
        return ConnectionFailure(host, plaintext, permanent=True)
    # The question this client asked, without SASL: is ApiVersions answered?
    answered = answers(security.ssl_context() if security.uses_tls else None)
    if answered is True:
        if closed and security.uses_sasl:  # so the broker closed it during SASL
            return ConnectionFailure(host, _sasl_failed(security, None), permanent=True)
        return failure
    if security.uses_tls:
        if isinstance(answered, ssl.SSLError):
            return ConnectionFailure(host, _tls_failed(security, answered), permanent=True)
        if closed and answers(None) is True:
            return ConnectionFailure(host, plaintext, permanent=True)
        if answered is False and not security.ssl_cert_file:
            # A broker that wants a client certificate says so with a TLS alert; some
            # TLS front ends just close the connection after the handshake.
            return ConnectionFailure(
                host,
                "TLS refused: the connection was closed after the handshake (the broker may "
                f"require a client certificate: set {SSL_CERT_FILE.name})",
                permanent=True,
            )
    elif closed and answers(_any_tls()) is True:
        return ConnectionFailure(
            host, f"the port speaks TLS ({protocol}: use SSL or SASL_SSL)", permanent=True
        )
    return failure


def _answers(
    host: str, port: int, context: ssl.SSLContext | None, timeout: float
) -> bool | BaseException:
    """True when ``host:port`` answers an ApiVersions request over plaintext (no
    ``context``) or TLS, False when it closes the connection without an answer, else
    the exception that stopped it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = context.wrap_socket(raw, server_hostname=host) if context else raw
            sock.sendall(_API_VERSIONS_V0)
            head = sock.recv(4)
            return len(head) == 4 and 0 < struct.unpack(">i", head)[0] < 1 << 20
    except (OSError, ValueError) as exc:
        return exc


def _any_tls() -> ssl.SSLContext:
    """A context that completes a handshake with any TLS server: to learn that a port
    speaks TLS, nothing more (no data of ours is sent before the question)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _verify_failed(security: KafkaSecurity, exc: ssl.SSLCertVerificationError) -> str:
    # Set by the ssl module on a failed handshake; absent on one built by hand.
    reason = getattr(exc, "verify_message", None) or _ssl_reason(exc)
    if getattr(exc, "verify_code", None) == _X509_HOSTNAME_MISMATCH:
        hint = f"{SSL_CHECK_HOSTNAME.name}=false skips this check"
    elif security.ssl_ca_file:
        hint = f"{SSL_CA_FILE.name}={security.ssl_ca_file}"
    else:
        hint = f"the system's CAs; set {SSL_CA_FILE.name}"
    return f"TLS handshake failed: certificate verify failed: {reason} ({hint})"


def _tls_failed(security: KafkaSecurity, exc: ssl.SSLError) -> str:
    reason = _ssl_reason(exc)
    code = reason.upper().replace(" ", "_")
    if "CERTIFICATE_REQUIRED" in code or "HANDSHAKE_FAILURE" in code:
        if not security.ssl_cert_file:
            return (
                f"TLS refused: {reason} (the broker requires a client certificate: "
                f"set {SSL_CERT_FILE.name})"
            )
        return f"TLS refused: {reason} ({SSL_CERT_FILE.name}={security.ssl_cert_file})"
    if "UNKNOWN_CA" in code or "BAD_CERTIFICATE" in code:
        return (
            f"TLS refused: {reason} (the broker does not trust "
            f"{SSL_CERT_FILE.name}={security.ssl_cert_file})"
        )
    return f"TLS handshake failed: {reason}"


def _sasl_failed(security: KafkaSecurity, exc: BaseException | None) -> str:
    mechanism = security.sasl_mechanism or "no mechanism"
    if isinstance(exc, UnsupportedSaslMechanismError | IllegalSaslStateError):
        detail = _message(exc)
        return f"SASL mechanism {mechanism} refused" + (f": {detail}" if detail else "")
    who = "" if security.uses_oauth else f" for user {security.sasl_username}"
    detail = f": {_message(exc)}" if exc is not None and _message(exc) else ""
    return f"SASL authentication failed{who} ({mechanism}){detail}"


def _closed(exc: KafkaConnectionError) -> str:
    message = _message(exc)
    if message.startswith("Unable to bootstrap"):
        return "no bootstrap host answered"
    return "the connection was closed before Kafka answered"


def _kafka_error(exc: BaseException) -> str:
    message = _message(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _message(exc: BaseException) -> str:
    """The exception's own text, first line only (a broker's message may be long);
    nothing when it is only an object's repr (aiokafka raises some of its SASL errors
    with the connection as their text)."""
    text = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    first = text.splitlines()[0] if text else ""
    return "" if first.startswith("<") and first.endswith(">") else first


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc)


def _split(host: str) -> tuple[str, int]:
    return split_bootstrap_server(host)
