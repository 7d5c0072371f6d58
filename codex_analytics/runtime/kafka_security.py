"""How a client proves who it is to Kafka and protects the connection: the security
protocol, TLS material and SASL credentials, read from the environment once.

:class:`KafkaSecurity` turns them into aiokafka's client options
(:meth:`KafkaSecurity.client_options`); :class:`~codex_analytics.runtime.kafka.KafkaCluster`
is the only caller. Secrets are read from files where a deployment mounts them and never
appear in a repr, a log line or an exception text: a password travels as
:class:`Secret`, whose repr is ``'***'``, and every error names the variable and the
file, never what the file holds.

Files are read when a client is built, not once at start: a rotated certificate, key or
password file is picked up by the next client (an OAUTHBEARER token file by the next
connection, see :class:`TokenFile`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from codex_analytics.runtime.config import Setting, boolean, choice, declare, existing_file, text
from codex_analytics.runtime.errors import ConfigError

#: The commands that start an embedded broker when ``KAFKA_BOOTSTRAP_SERVERS`` is unset.
EMBEDDED_BROKER_USERS = (
    "stream worker",
    "sink worker",
    "gateway",
    "produce",
    "generate",
    "demo",
    "smoke plugin",
)
#: Every command that talks to Kafka (the same readers as ``KAFKA_BOOTSTRAP_SERVERS``).
CLUSTER_READERS = (*EMBEDDED_BROKER_USERS, "replay", "offsets", "dlq", "topics", "client library")

PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
MECHANISMS = ("plain", "scram-sha-256", "scram-sha-512", "oauthbearer")
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})

SECURITY_PROTOCOL = declare(
    "KAFKA_SECURITY_PROTOCOL",
    choice(*PROTOCOLS),
    "plaintext",
    help="how clients connect to the brokers: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or "
    "`SASL_SSL` (case-insensitive)",
    used_by=CLUSTER_READERS,
)
SSL_CA_FILE = declare(
    "KAFKA_SSL_CA_FILE",
    existing_file(),
    None,
    help="PEM file of the CA(s) that signed the brokers' certificates (`SSL`, `SASL_SSL`)",
    used_by=CLUSTER_READERS,
    default_note="the system's CAs",
)
SSL_CERT_FILE = declare(
    "KAFKA_SSL_CERT_FILE",
    existing_file(),
    None,
    help="PEM client certificate (chain) for brokers that require one (mTLS); needs "
    "`KAFKA_SSL_KEY_FILE` unless the file holds the key too",
    used_by=CLUSTER_READERS,
    default_note="no client certificate",
)
SSL_KEY_FILE = declare(
    "KAFKA_SSL_KEY_FILE",
    existing_file(),
    None,
    help="PEM private key of `KAFKA_SSL_CERT_FILE`",
    used_by=CLUSTER_READERS,
    default_note="the key is in `KAFKA_SSL_CERT_FILE`",
)
SSL_KEY_PASSWORD_FILE = declare(
    "KAFKA_SSL_KEY_PASSWORD_FILE",
    existing_file(),
    None,
    help="file holding the password of an encrypted `KAFKA_SSL_KEY_FILE` (one line)",
    used_by=CLUSTER_READERS,
    default_note="the key is not encrypted",
)
SSL_CHECK_HOSTNAME = declare(
    "KAFKA_SSL_CHECK_HOSTNAME",
    boolean(),
    True,
    help="check that a broker's certificate names the host connected to; `false` still "
    "verifies the certificate against the CA",
    used_by=CLUSTER_READERS,
)
SASL_MECHANISM = declare(
    "KAFKA_SASL_MECHANISM",
    choice(*MECHANISMS),
    None,
    help="`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (with "
    "`KAFKA_SASL_OAUTH_TOKEN_FILE`); required by the `SASL_*` protocols",
    used_by=CLUSTER_READERS,
    default_note="unset",
)
SASL_USERNAME = declare(
    "KAFKA_SASL_USERNAME",
    text("user"),
    None,
    help="SASL user (`PLAIN`, `SCRAM-*`)",
    used_by=CLUSTER_READERS,
    default_note="unset",
)
SASL_PASSWORD = declare(
    "KAFKA_SASL_PASSWORD",
    text("password"),
    None,
    help="SASL password (`PLAIN`, `SCRAM-*`); prefer `KAFKA_SASL_PASSWORD_FILE`",
    used_by=CLUSTER_READERS,
    secret=True,
    default_note="unset",
)
SASL_PASSWORD_FILE = declare(
    "KAFKA_SASL_PASSWORD_FILE",
    existing_file(),
    None,
    help="file holding the SASL password (one line), read when a client is built",
    used_by=CLUSTER_READERS,
    default_note="unset",
)
SASL_OAUTH_TOKEN_FILE = declare(
    "KAFKA_SASL_OAUTH_TOKEN_FILE",
    existing_file(),
    None,
    help="file holding the OAUTHBEARER token (for example written by an MSK IAM or OIDC "
    "sidecar); read again whenever it changes",
    used_by=CLUSTER_READERS,
    default_note="unset",
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    SECURITY_PROTOCOL,
    SSL_CA_FILE,
    SSL_CERT_FILE,
    SSL_KEY_FILE,
    SSL_KEY_PASSWORD_FILE,
    SSL_CHECK_HOSTNAME,
    SASL_MECHANISM,
    SASL_USERNAME,
    SASL_PASSWORD,
    SASL_PASSWORD_FILE,
    SASL_OAUTH_TOKEN_FILE,
)

#: The settings that name a TLS file (checked to exist and be readable at start).
_TLS_FILES = (SSL_CA_FILE, SSL_CERT_FILE, SSL_KEY_FILE, SSL_KEY_PASSWORD_FILE)


class Secret(str):
    """A credential as text: aiokafka takes it as a ``str``, but its repr (and so the
    repr of any options dict, dataclass or log argument holding it) is ``'***'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def read_secret_file(setting: Setting[Any, Any], path: str) -> Secret:
    """The first line of a mounted secret file; errors name the variable and the path."""
    try:
        with open(path, encoding="utf-8") as file:
            value = file.readline().strip()
    except OSError as exc:
        raise ConfigError(f"{setting.name}={path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{setting.name}={path}: not UTF-8 text") from None
    if not value:
        raise ConfigError(f"{setting.name}={path}: the file is empty")
    return Secret(value)


class TokenFile(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's OAUTHBEARER token provider for a token a sidecar keeps in a file.

    aiokafka asks for a token on every new connection; the file is read again when it
    changed (its modification time, size or inode), so a refreshed token is used from
    the next connection on. A failed read is raised (never cached): the connection fails
    with the variable and the path in its message."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token: Secret | None = None

    async def token(self) -> str:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise ConfigError(
                f"{SASL_OAUTH_TOKEN_FILE.name}={self.path}: cannot read it ({exc.strerror})"
            ) from None
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._token is None or seen != self._seen:
            self._token = read_secret_file(SASL_OAUTH_TOKEN_FILE, self.path)
            self._seen = seen
        return self._token

    def __repr__(self) -> str:
        return f"<TokenFile {self.path}>"


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The connection's security: ``PLAINTEXT`` by default (the embedded broker).

    Build it with :meth:`from_env` (which checks it) or directly in tests. File fields
    are paths; :attr:`sasl_password` holds a value only when ``KAFKA_SASL_PASSWORD`` set
    one (a :class:`Secret`, never shown)."""

    protocol: str = "PLAINTEXT"
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_key_password_file: str | None = None
    ssl_check_hostname: bool = True
    #: Upper case, as aiokafka spells it: ``PLAIN``, ``SCRAM-SHA-512``, ``OAUTHBEARER``...
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = field(default=None, repr=False)
    sasl_password_file: str | None = None
    sasl_oauth_token_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The security the environment describes; a ``ConfigError`` (a ``ValueError``)
        naming the variable when it is incomplete, contradictory or a file is missing."""
        env = os.environ if environ is None else environ
        mechanism = SASL_MECHANISM.read(env)
        password = SASL_PASSWORD.read(env)
        security = cls(
            protocol=SECURITY_PROTOCOL.read(env).upper(),
            ssl_ca_file=SSL_CA_FILE.read(env),
            ssl_cert_file=SSL_CERT_FILE.read(env),
            ssl_key_file=SSL_KEY_FILE.read(env),
            ssl_key_password_file=SSL_KEY_PASSWORD_FILE.read(env),
            ssl_check_hostname=SSL_CHECK_HOSTNAME.read(env),
            sasl_mechanism=mechanism.upper() if mechanism else None,
            sasl_username=SASL_USERNAME.read(env),
            sasl_password=Secret(password) if password else None,
            sasl_password_file=SASL_PASSWORD_FILE.read(env),
            sasl_oauth_token_file=SASL_OAUTH_TOKEN_FILE.read(env),
        )
        security.check()
        return security

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    @property
    def uses_oauth(self) -> bool:
        return self.sasl_mechanism == "OAUTHBEARER"

    def check(self) -> None:
        """Raise ``ConfigError`` for settings that cannot work: the first problem, one
        line naming the variable. Contradictions are errors, not warnings: TLS files or
        SASL settings with a protocol that ignores them mean the connection is not
        protected as the deployment intended."""
        protocol = f"{SECURITY_PROTOCOL.name}={self.protocol}"
        for setting, path in self._tls_files():
            if not self.uses_tls:
                raise ConfigError(
                    f"{setting.name} is set but {protocol} does not use TLS "
                    "(use SSL or SASL_SSL, or unset it)"
                )
            if not os.access(path, os.R_OK):
                missing = "does not exist" if not os.path.exists(path) else "is not readable"
                raise ConfigError(f"{setting.name}={path}: the file {missing}")
        if self.ssl_key_file and not self.ssl_cert_file:
            raise ConfigError(f"{SSL_KEY_FILE.name} is set without {SSL_CERT_FILE.name}")
        if self.ssl_key_password_file and not self.ssl_cert_file:
            raise ConfigError(f"{SSL_KEY_PASSWORD_FILE.name} is set without {SSL_CERT_FILE.name}")
        self._check_sasl(protocol)
        if self.uses_tls:
            self.ssl_context()  # a bad PEM or key password fails here, naming the file

    def _check_sasl(self, protocol: str) -> None:
        sasl_set = [
            setting.name
            for setting, value in (
                (SASL_MECHANISM, self.sasl_mechanism),
                (SASL_USERNAME, self.sasl_username),
                (SASL_PASSWORD, self.sasl_password),
                (SASL_PASSWORD_FILE, self.sasl_password_file),
                (SASL_OAUTH_TOKEN_FILE, self.sasl_oauth_token_file),
            )
            if value
        ]
        if not self.uses_sasl:
            if sasl_set:
                raise ConfigError(
                    f"{sasl_set[0]} is set but {protocol} does not use SASL "
                    "(use SASL_SSL or SASL_PLAINTEXT, or unset it)"
                )
            return
        if not self.sasl_mechanism:
            raise ConfigError(
                f"{protocol} needs {SASL_MECHANISM.name} "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        mechanism = f"{SASL_MECHANISM.name}={self.sasl_mechanism}"
        if self.uses_oauth:
            if not self.sasl_oauth_token_file:
                raise ConfigError(f"{mechanism} needs {SASL_OAUTH_TOKEN_FILE.name}")
            for name in (SASL_USERNAME.name, SASL_PASSWORD.name, SASL_PASSWORD_FILE.name):
                if name in sasl_set:
                    raise ConfigError(f"{name} is set but {mechanism} does not use it")
            read_secret_file(SASL_OAUTH_TOKEN_FILE, self.sasl_oauth_token_file)
            return
        if self.sasl_oauth_token_file:
            raise ConfigError(
                f"{SASL_OAUTH_TOKEN_FILE.name} is set but {mechanism} is not OAUTHBEARER"
            )
        if not self.sasl_username:
            raise ConfigError(f"{mechanism} needs {SASL_USERNAME.name}")
        if bool(self.sasl_password) == bool(self.sasl_password_file):
            raise ConfigError(
                f"{mechanism} needs exactly one of {SASL_PASSWORD.name} and "
                f"{SASL_PASSWORD_FILE.name}"
            )
        self.password()

    def _tls_files(self) -> list[tuple[Setting[Any, Any], str]]:
        values = (
            self.ssl_ca_file,
            self.ssl_cert_file,
            self.ssl_key_file,
            self.ssl_key_password_file,
        )
        return [(setting, path) for setting, path in zip(_TLS_FILES, values, strict=True) if path]

    def password(self) -> Secret:
        """The SASL password: ``KAFKA_SASL_PASSWORD``, or the password file read now."""
        if self.sasl_password:
            return self.sasl_password
        if not self.sasl_password_file:
            raise ConfigError(f"no {SASL_PASSWORD.name} or {SASL_PASSWORD_FILE.name}")
        return read_secret_file(SASL_PASSWORD_FILE, self.sasl_password_file)

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: the CA file (else the system's CAs), the client
        certificate if any, hostname checking as configured; certificates are always
        verified. Errors name the variable and the file, never a password."""
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{SSL_CA_FILE.name}={self.ssl_ca_file}: not a PEM CA certificate ({_reason(exc)})"
            ) from None
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_cert_file:
            key_password = (
                read_secret_file(SSL_KEY_PASSWORD_FILE, self.ssl_key_password_file)
                if self.ssl_key_password_file
                else None
            )
            try:
                # A callable: ssl never calls it for an unencrypted key, and an encrypted
                # key without a password fails instead of prompting on the terminal.
                context.load_cert_chain(
                    self.ssl_cert_file, self.ssl_key_file, password=lambda: key_password or ""
                )
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(self._cert_error(exc)) from None
        return context

    def _cert_error(self, exc: BaseException) -> str:
        where = f"{SSL_CERT_FILE.name}={self.ssl_cert_file}"
        if self.ssl_key_file:
            where += f", {SSL_KEY_FILE.name}={self.ssl_key_file}"
        reason = _reason(exc)
        if _is_encrypted(self.ssl_key_file or self.ssl_cert_file or ""):
            hint = (
                f"wrong password in {SSL_KEY_PASSWORD_FILE.name}"
                if self.ssl_key_password_file
                else f"the key is encrypted: set {SSL_KEY_PASSWORD_FILE.name}"
            )
            return f"{where}: cannot load the key ({hint})"
        return f"{where}: cannot load the certificate and key ({reason})"

    def client_options(self) -> dict[str, Any]:
        """aiokafka's options for this security (the same for every kind of client).
        Files are read now: each client gets the current certificate and password."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl and self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.uses_oauth and self.sasl_oauth_token_file:
                options["sasl_oauth_token_provider"] = TokenFile(self.sasl_oauth_token_file)
            else:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = self.password()
        return options

    def environment(self) -> dict[str, str]:
        """The variables that describe this security (:meth:`from_env` reads them back):
        for a process this one starts. Files are passed as paths; a password is passed
        only if it came from ``KAFKA_SASL_PASSWORD`` (as a :class:`Secret`: a repr of
        the mapping shows ``'***'``)."""
        env: dict[str, str] = {SECURITY_PROTOCOL.name: self.protocol}
        for setting, path in self._tls_files():
            env[setting.name] = path
        if self.uses_tls:
            env[SSL_CHECK_HOSTNAME.name] = "true" if self.ssl_check_hostname else "false"
        optional: tuple[tuple[Setting[Any, Any], str | None], ...] = (
            (SASL_MECHANISM, self.sasl_mechanism),
            (SASL_USERNAME, self.sasl_username),
            (SASL_PASSWORD, self.sasl_password),
            (SASL_PASSWORD_FILE, self.sasl_password_file),
            (SASL_OAUTH_TOKEN_FILE, self.sasl_oauth_token_file),
        )
        env.update({setting.name: value for setting, value in optional if value})
        return env

    def describe(self) -> str:
        """How clients connect, for a start line: ``SASL_SSL SCRAM-SHA-512 as alice``."""
        parts = [self.protocol]
        if self.uses_sasl and self.sasl_mechanism:
            parts.append(self.sasl_mechanism)
            if self.sasl_username and not self.uses_oauth:
                parts.append(f"as {self.sasl_username}")
        if self.ssl_cert_file:
            parts.append("with a client certificate")
        return " ".join(parts)


def _is_encrypted(key_file: str) -> bool:
    """Whether a PEM key file holds an encrypted key (PKCS#8 or the older OpenSSL form):
    ssl's own error for a wrong or missing password is "PEM lib"."""
    try:
        with open(key_file, "rb") as file:
            head = file.read(64 * 1024)
    except OSError:
        return False
    return b"ENCRYPTED PRIVATE KEY" in head or b"Proc-Type: 4,ENCRYPTED" in head


def _reason(exc: BaseException) -> str:
    """An ``ssl``/``OSError``'s reason without the errno noise."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


PLAINTEXT = KafkaSecurity()
