"""Typed reads of environment settings, shared by every service's settings object.

Each parser names the variable in its error, so a bad deployment fails at start with a
message that says what to fix. An empty value counts as unset (as upstream treats
``CODEX_ANALYTICS_EVENTS_CAPTURE_FILE``), and surrounding blanks are ignored.

The ``parse_*`` functions turn one present value into a typed one; the declarations of
:mod:`codex_analytics.runtime.config` read through them. The ``env_*`` helpers are the
same reads for code that names a variable directly.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def present(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value without surrounding blanks; None when unset or empty."""
    raw = env.get(name, "").strip()
    return raw or None


def parse_number(name: str, raw: str, *, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # ``inf`` and ``nan`` parse, and then break int()
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def parse_int(name: str, raw: str, *, minimum: int) -> int:
    """A whole number, written as an integer or as a float with no fraction (``1e3``)."""
    value = parse_number(name, raw, minimum=minimum)
    if value != int(value):
        raise ValueError(f"{name} must be a whole number, got {raw!r}")
    return int(value)


def parse_int_literal(name: str, raw: str, *, minimum: int) -> int:
    """An integer literal only (``8``, not ``8.0``): the topic settings' historic rule."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def parse_bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false (1/0, yes/no, on/off), got {lowered!r}")


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    lowered = raw.lower()
    if lowered not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {lowered!r}")
    return lowered


def env_number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = present(env, name)
    return default if raw is None else parse_number(name, raw, minimum=minimum)


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = present(env, name)
    return default if raw is None else parse_int(name, raw, minimum=minimum)


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = present(env, name)
    return default if raw is None else parse_bool(name, raw)


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    raw = present(env, name)
    return default if raw is None else raw


def env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = present(env, name)
    return parse_choice(name, default if raw is None else raw, choices)


#: What a host may be: a DNS name or IPv4 address, or an IPv6 address in brackets.
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.%a-z]+\]")


def split_host_port(addr: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port`` -> (host, port); a ``ValueError`` that quotes
    ``addr`` when the port is not a number in 0-65535 or the host is no host name."""
    host, _, port = addr.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"no port number in {addr!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range (0-65535) in {addr!r}")
    if host and not _HOST.fullmatch(host):
        raise ValueError(f"not a host name in {addr!r}")
    return (host.strip("[]") or default_host), number


def parse_address(name: str, raw: str) -> str:
    """A listen address, ``HOST:PORT`` (``:PORT`` listens on 127.0.0.1; port 0 picks a
    free one); returned as written."""
    try:
        split_host_port(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be HOST:PORT: {exc}") from None
    return raw


#: The port of a bootstrap server written without one, as in every Kafka client.
DEFAULT_BROKER_PORT = 9092


def split_bootstrap_server(server: str) -> tuple[str, int]:
    """One ``HOST[:PORT]`` of a bootstrap list -> (host, port), the port defaulting to
    9092; a ``ValueError`` as :func:`split_host_port` raises it."""
    server = server.strip()
    if server.endswith("]") or ":" not in server:  # no port: Kafka's default
        server += f":{DEFAULT_BROKER_PORT}"
    return split_host_port(server, default_host="")


def parse_broker_list(name: str, raw: str) -> str:
    """Kafka bootstrap servers: ``HOST[:PORT]`` items separated by commas (the port
    defaults to 9092, as in every Kafka client); returned as written."""
    for item in raw.split(","):
        server = item.strip()
        if not server:
            raise ValueError(f"{name} has an empty server in {raw!r}")
        try:
            host, port = split_bootstrap_server(server)
        except ValueError as exc:
            raise ValueError(f"{name} must be HOST:PORT,...: {exc}") from None
        if not host or port == 0:
            raise ValueError(
                f"{name} must be HOST:PORT,... with a host and a port above 0, got {item.strip()!r}"
            )
    return raw


#: The level names :mod:`logging` knows, in the order an error lists them.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(name: str, raw: str) -> str:
    """A :mod:`logging` level name (``WARN`` and ``FATAL`` too), upper-cased."""
    level = raw.upper()
    if level == "NOTSET" or level not in logging.getLevelNamesMapping():
        raise ValueError(f"{name} must be one of {', '.join(LOG_LEVELS)}; got {raw!r}")
    return level


def shown_url(url: str) -> str:
    """``url`` without its user part (a password, or a token written as the user):
    what a message may quote."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_http_url(name: str, raw: str) -> str:
    """An absolute ``http://`` or ``https://`` URL with a host (and a valid port)."""
    try:
        parts = urlsplit(raw)
        port_ok = parts.port is None or parts.port > 0  # ``.port`` raises when out of range
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or any(c.isspace() for c in raw):
        raise ValueError(f"{name} must be an http(s) URL, got {shown_url(raw)!r}")
    if not parts.hostname or not port_ok:
        raise ValueError(
            f"{name} must be an http(s) URL with a host and a valid port, got {shown_url(raw)!r}"
        )
    if "@" in parts.netloc:
        # httpx would send it as Basic auth in place of the account's Bearer token, and
        # log it with every request.
        raise ValueError(
            f"{name} must not hold credentials (user:password@): tokens come from the "
            f"credential settings; got {shown_url(raw)!r}"
        )
    return raw


def nearest_existing(path: str) -> str:
    """``path`` or the closest of its ancestors that exists."""
    current = os.path.abspath(path)
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current


def parse_existing_directory(name: str, raw: str) -> str:
    if not os.path.isdir(raw):
        why = "is not a directory" if os.path.lexists(raw) else "does not exist"
        raise ValueError(f"{name} must be an existing directory: {raw!r} {why}")
    return raw


def parse_existing_file(name: str, raw: str) -> str:
    if not os.path.isfile(raw):
        why = "is not a file" if os.path.lexists(raw) else "does not exist"
        raise ValueError(f"{name} must be an existing file: {raw!r} {why}")
    return raw


def parse_directory_path(name: str, raw: str) -> str:
    """A directory that exists or can be made (its nearest existing ancestor is one)."""
    _creatable(name, raw, want_dir=True)
    return raw


def parse_file_path(name: str, raw: str) -> str:
    """A file that exists or can be created once its directory is there: not a directory,
    and no ancestor of it is a file. Its directory may be missing (a volume not mounted
    yet is the service's to wait for, not a typo)."""
    _creatable(name, raw, want_dir=False)
    return raw


def _creatable(name: str, raw: str, *, want_dir: bool) -> None:
    if os.path.lexists(raw):
        if os.path.isdir(raw) != want_dir:
            what = "a directory" if want_dir else "a file, not a directory"
            raise ValueError(f"{name} must be {what}: {raw!r} is not")
        return
    blocker = nearest_existing(raw)
    if not os.path.isdir(blocker):
        raise ValueError(f"{name}: {raw!r} cannot be created: {blocker!r} is not a directory")


#: What Kafka allows in a topic name (and so in a prefix of one).
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def parse_topic(name: str, raw: str) -> str:
    """A name Kafka accepts for a topic: ASCII letters, digits, ``.``, ``_`` and ``-``,
    at most 249 of them, not ``.`` or ``..``."""
    if not _TOPIC.fullmatch(raw) or raw in (".", ".."):
        raise ValueError(
            f"{name} must be a Kafka topic name (letters, digits, '.', '_', '-'; at most "
            f"249), got {raw!r}"
        )
    return raw
