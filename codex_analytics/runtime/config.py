"""Settings declared once: every environment variable is one :class:`Setting`.

A declaration holds what used to be written three times (the ``from_env`` code, the
README's configuration table and each command's ``--help``): the name, how its text is
parsed (type and bounds), the default, what it means, whether its value is secret and
which commands read it. Each service declares its variables next to its frozen settings
dataclass and reads them through :meth:`Setting.read`; the CLI renders the README table
and the ``Environment`` part of every ``--help`` from the same objects
(:mod:`codex_analytics.cli.settings_catalog`), so the three cannot drift apart again.

A variable that two services read differently (another default, a stricter type) is
declared once and *varied* (:meth:`Setting.variant`): the variant names its readers,
and the docs show the difference next to the one declaration.

The few variables that several independent services read are declared at the end of
this module, because the runtime kernel is the only code those services share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

from codex_analytics.runtime import env as _env
from codex_analytics.runtime.errors import ConfigError

V = TypeVar("V")  # what a present value parses to
D = TypeVar("D")  # the default's type (None for "unset")
V2 = TypeVar("V2")
D2 = TypeVar("D2")


#: What ``codex-analytics config check`` can test about a value beyond parsing it: an
#: address to bind, brokers or a URL to reach (``--bind``, ``--connect``), a path to
#: read or write.
Probe = Literal["listen", "brokers", "url", "read_dir", "write_dir", "read_file", "write_file"]


@dataclass(frozen=True, slots=True)
class Kind(Generic[V]):
    """How a variable's text becomes a value: ``parse(name, text)`` (``text`` is present
    and stripped; errors name the variable) and the ``label`` the docs show as its type.
    ``probe`` says what else a configuration check can test (None: parsing is all)."""

    label: str
    parse: Callable[[str, str], V]
    probe: Probe | None = None


def integer(*, minimum: int) -> Kind[int]:
    """A whole number (``1e3`` counts) of at least ``minimum``."""
    return Kind(f"int >= {minimum}", lambda name, raw: _env.parse_int(name, raw, minimum=minimum))


def integer_literal(*, minimum: int) -> Kind[int]:
    """An integer literal only, with the topic settings' historic error messages."""
    return Kind(
        f"int >= {minimum}",
        lambda name, raw: _env.parse_int_literal(name, raw, minimum=minimum),
    )


def truncated_integer(*, minimum: float) -> Kind[int]:
    """A number of at least ``minimum`` whose whole part is used: the stream worker's
    historic rule for its counts (``2000.5`` records is read as 2000)."""
    return Kind(
        f"int >= {minimum:g}",
        lambda name, raw: int(_env.parse_number(name, raw, minimum=minimum)),
    )


def number(*, minimum: float) -> Kind[float]:
    return Kind(
        f"number >= {minimum:g}",
        lambda name, raw: _env.parse_number(name, raw, minimum=minimum),
    )


def boolean() -> Kind[bool]:
    return Kind("bool", _env.parse_bool)


def choice(*choices: str) -> Kind[str]:
    """One of ``choices`` (lower case; the value is lowered before it is checked)."""
    return Kind(" | ".join(choices), lambda name, raw: _env.parse_choice(name, raw, choices))


def text(label: str = "text") -> Kind[str]:
    """Any text, used as is; ``label`` says what it is for the docs (path, HOST:PORT...)."""
    return Kind(label, lambda name, raw: raw)


def topic_name(label: str = "topic") -> Kind[str]:
    """A Kafka topic name, or a name that prefixes topics (``label`` says which)."""
    return Kind(label, _env.parse_topic)


def address() -> Kind[str]:
    """A listen address, ``HOST:PORT`` with a port in 0-65535 (0: any free port)."""
    return Kind("HOST:PORT", _env.parse_address, probe="listen")


def broker_list() -> Kind[str]:
    """Kafka bootstrap servers, ``HOST:PORT,...``."""
    return Kind("HOST:PORT,...", _env.parse_broker_list, probe="brokers")


def log_level() -> Kind[str]:
    """A :mod:`logging` level name, upper-cased."""
    return Kind("log level", _env.parse_log_level)


def http_url() -> Kind[str]:
    """An absolute http(s) URL with a host."""
    return Kind("URL", _env.parse_http_url, probe="url")


def existing_directory() -> Kind[str]:
    """A directory that must be there at start (a mounted secret, a home)."""
    return Kind("existing directory", _env.parse_existing_directory, probe="read_dir")


def directory_path() -> Kind[str]:
    """A directory the service writes in: there, or creatable."""
    return Kind("directory", _env.parse_directory_path, probe="write_dir")


def existing_file() -> Kind[str]:
    """A file that must be there at start (a binary, a CA certificate)."""
    return Kind("existing file", _env.parse_existing_file, probe="read_file")


def file_path() -> Kind[str]:
    """A file the service writes: not a directory, under no file (its directory may
    appear later; a configuration check says when it is missing or not writable)."""
    return Kind("path", _env.parse_file_path, probe="write_file")


_KEEP: Any = object()


@dataclass(frozen=True, slots=True, eq=False)
class Setting(Generic[V, D]):
    """One environment variable. :meth:`read` gives its value: the parsed text when it
    is set (and not blank), else ``default``. Build it with :func:`declare`."""

    name: str
    kind: Kind[V]
    default: D
    help: str
    #: The readers: command paths as typed after ``codex-analytics`` ("stream worker",
    #: "offsets"), or what else reads it ("client library", "./dev").
    used_by: tuple[str, ...]
    #: Other names read when ``name`` is unset (first set one wins), e.g. our short alias
    #: of an upstream variable.
    aliases: tuple[str, ...] = ()
    #: The value is a credential: errors and docs never show it.
    secret: bool = False
    #: Said after the default in the docs; alone when the default is None (then the
    #: reader computes or does without it: "twice the longer horizon", "open").
    default_note: str = ""
    #: The declaration this one varies (see :meth:`variant`); None for a declaration.
    base: Setting[Any, Any] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def raw(self, env: Mapping[str, str]) -> str | None:
        """The text of the first of :attr:`names` that is set and not blank."""
        for name in self.names:
            value = _env.present(env, name)
            if value is not None:
                return value
        return None

    def read(self, env: Mapping[str, str]) -> V | D:
        """The value, or a :class:`ConfigError` naming the variable (a secret's error
        never quotes it)."""
        raw = self.raw(env)
        if raw is None:
            return self.default
        try:
            return self.kind.parse(self.name, raw)
        except ValueError as exc:
            if self.secret:
                raise ConfigError(f"{self.name} is not a valid {self.kind.label}") from None
            raise ConfigError(str(exc)) from None

    @overload
    def variant(self, *, used_by: Sequence[str], default: D2) -> Setting[V, D2]: ...
    @overload
    def variant(self, *, used_by: Sequence[str], kind: Kind[V2]) -> Setting[V2, D]: ...
    def variant(
        self, *, used_by: Sequence[str], default: Any = _KEEP, kind: Any = _KEEP
    ) -> Setting[Any, Any]:
        """The same variable as ``used_by`` read it: with another default or kind. The
        docs show both next to each other; the name stays declared once."""
        changes: dict[str, Any] = {"used_by": tuple(used_by), "base": self}
        if default is not _KEEP:
            changes["default"] = default
            changes["default_note"] = ""  # it was about the declaration's default
        if kind is not _KEEP:
            changes["kind"] = kind
        return dataclasses.replace(self, **changes)

    def shown_default(self) -> str:
        """The default as the docs write it (Markdown)."""
        if self.default is None:
            return self.default_note or "unset"
        shown = f"`{_format(self.default)}`"
        return f"{shown} ({self.default_note})" if self.default_note else shown


def declare(
    name: str,
    kind: Kind[V],
    default: D,
    *,
    help: str,
    used_by: Sequence[str],
    aliases: Sequence[str] = (),
    secret: bool = False,
    default_note: str = "",
) -> Setting[V, D]:
    """Declare one variable; ``help`` is Markdown (one line, as in the README table)."""
    return Setting(
        name=name,
        kind=kind,
        default=default,
        help=help,
        used_by=tuple(used_by),
        aliases=tuple(aliases),
        secret=secret,
        default_note=default_note,
    )


def reads(reader: str, command: str) -> bool:
    """Whether ``reader`` (a ``used_by`` entry) is ``command`` or one of its parents:
    ``offsets show`` reads what ``offsets`` reads."""
    return command == reader or command.startswith(reader + " ")


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# -- Variables several independent services read --------------------------------------

LOG_LEVEL = declare(
    "ANALYTICS_LOG_LEVEL",
    log_level(),
    "WARNING",
    help="log level of the service (JSON lines when stderr is not a terminal)",
    used_by=("stream worker", "replay"),
)

FACTS_PER_RECORD = declare(
    "ANALYTICS_FACTS_PER_RECORD",
    integer(minimum=1),
    1,
    help="more than 1 packs up to that many facts of one instance per record",
    used_by=("gateway", "produce", "generate", "client library"),
)

#: The services that run until stopped, and replay, which reads the stream's settings.
LONG_RUNNING = ("gateway", "sink worker", "stream worker", "replay")

SHUTDOWN_TIMEOUT_S = declare(
    "ANALYTICS_SHUTDOWN_TIMEOUT_S",
    number(minimum=0),
    10.0,
    help="SIGTERM: time to finish the work in flight (the gateway: answer requests and "
    "flush its producer; the stream: the batch in flight; the sink: flush and deliver open "
    "batches, then commit and leave the group) before exiting anyway (status 75); a second "
    "SIGTERM exits at once",
    used_by=LONG_RUNNING,
)

HEALTH_STALL_S = declare(
    "ANALYTICS_HEALTH_STALL_S",
    number(minimum=1),
    60.0,
    help="`GET /livez` answers 503 once the service's event loop has not run its heartbeat "
    "(every 0.5 s) for this long: a wedged process, never a broker, endpoint or disk fault",
    used_by=LONG_RUNNING,
)

SESSION_TIMEOUT_MS = declare(
    "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS",
    integer(minimum=1000),
    10_000,
    help="consumer-group session timeout of the workers: a dead worker's partitions move "
    "after it; joining a group takes half of it on the embedded broker",
    used_by=tuple(r for r in LONG_RUNNING if r != "gateway"),
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    LOG_LEVEL,
    SESSION_TIMEOUT_MS,
    FACTS_PER_RECORD,
    SHUTDOWN_TIMEOUT_S,
    HEALTH_STALL_S,
)
