"""The checks of ``codex-analytics config check``: an environment in, findings out.

Everything comes from the declarations (:mod:`codex_analytics.cli.settings_catalog`):
which variables a command reads and how (its kind: a number with bounds, a log level,
an address, a URL, a path that must exist...), so a variable declared tomorrow is
checked tomorrow, by nothing but its declaration. On top of each variable alone, the
service's own settings reader runs (the rules between variables: a retention shorter
than a horizon, a sink with neither an endpoint nor a capture file), and the places a
service will need are looked at: directories to read or write, the secrets directory's
token files. Network probes (``--connect``, ``--bind``) live in
:mod:`codex_analytics.cli.config_probes`.

No finding quotes a secret: a secret variable's error says which variable and what kind
of value it needs, never what it holds, and a URL loses its password.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from codex_analytics.cli.settings_catalog import Variable, catalog, declared_names
from codex_analytics.runtime.config import Setting, reads
from codex_analytics.runtime.env import nearest_existing, shown_url
from codex_analytics.runtime.env_names import is_service_link, unknown_variables, watched
from codex_analytics.runtime.kafka import BOOTSTRAP, KafkaCluster
from codex_analytics.runtime.kafka_security import CLUSTER_READERS, EMBEDDED_BROKER_USERS

Level = Literal["error", "warning", "info", "ok"]
LEVELS: tuple[Level, ...] = ("error", "warning", "info", "ok")

#: What ``config check`` checks when no service is named: the long-running services.
DEFAULT_SERVICES = ("gateway", "stream worker", "sink worker")
#: Readers in the catalog that are not commands one can check.
_NOT_COMMANDS = frozenset({"./dev"})
#: Short names accepted for a command path.
ALIASES = {
    "stream": "stream worker",
    "sink": "sink worker",
    "smoke": "smoke plugin",
    "client": "client library",
}


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    #: What it is about: a variable's name, or ``environment``, ``broker``, a command.
    subject: str
    #: One line, starting with what it is about; never a secret.
    message: str
    #: The checked commands it concerns (empty: the environment as a whole).
    services: tuple[str, ...] = ()

    def line(self) -> str:
        where = f" [{', '.join(self.services)}]" if self.services else ""
        return f"{self.level:<8}{self.message}{where}"

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "subject": self.subject,
            "message": self.message,
            "services": list(self.services),
        }


def checkable_commands() -> tuple[str, ...]:
    """Every command path the catalog names as a reader, in table order."""
    found = (reader for v in catalog() for reader in v.used_by if reader not in _NOT_COMMANDS)
    return tuple(dict.fromkeys(found))


def resolve_commands(words: Sequence[str]) -> list[str]:
    """Command paths from the words typed after ``config check``: ``stream worker`` as
    one quoted word or two, ``stream`` alone, ``sink gateway``...; a ``ValueError``
    naming the unknown word and the choices."""
    known = checkable_commands()
    resolved: list[str] = []
    rest = [w for word in words for w in word.split()]
    while rest:
        two = " ".join(rest[:2])
        if len(rest) > 1 and two in known:
            resolved.append(two)
            rest = rest[2:]
            continue
        word = ALIASES.get(rest[0], rest[0])
        if word not in known:
            choices = ", ".join(sorted({*known, *ALIASES}))
            raise ValueError(f"unknown service {rest[0]!r}; choose from: {choices}")
        resolved.append(word)
        rest = rest[1:]
    return list(dict.fromkeys(resolved)) or list(DEFAULT_SERVICES)


@dataclass
class _Reading:
    """One way a variable is read, and which of the checked commands read it so."""

    setting: Setting[Any, Any]
    services: list[str] = field(default_factory=list)


def check_environment(env: Mapping[str, str], services: Sequence[str]) -> list[Finding]:
    """Every finding about ``env`` for ``services`` (command paths), errors and all:
    nothing stops at the first."""
    variables = catalog()
    findings = list(_unknown(env))
    readings = _readings(variables, services)
    for reading in readings:
        findings += _check_value(env, reading)
    findings += _secrets(env, services)
    findings += _single_account(env, services)
    findings += _bootstrap(env, services)
    # The rules between variables, with the bad ones at their defaults: a missing
    # endpoint is said now, not after the log level is fixed.
    bad = {name for r in readings if not _parses(env, r.setting) for name in r.setting.names}
    rest = {name: value for name, value in env.items() if name not in bad}
    for service in services:
        findings += _service_rules(rest, service)
    findings += _not_read(env, variables, services)
    return _merged(findings)


def _merged(findings: Iterable[Finding]) -> list[Finding]:
    """One finding where several readings said the same (the gateway's variant of the
    log level fails as the stream's declaration does), naming every service."""
    merged: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        key = (finding.level, finding.subject, finding.message)
        seen = merged.get(key)
        services = finding.services if seen is None else (*seen.services, *finding.services)
        merged[key] = Finding(*key, tuple(dict.fromkeys(services)))
    return list(merged.values())


def _unknown(env: Mapping[str, str]) -> Iterable[Finding]:
    for unknown in unknown_variables(env, declared_names()):
        yield Finding("error", unknown.name, unknown.describe())
    links = sorted(n for n, v in env.items() if watched(n) and is_service_link(n, v))
    if links:
        yield Finding(
            "info",
            "environment",
            f"{len(links)} Kubernetes service-link variable(s) ignored ({', '.join(links[:3])}"
            f"{', ...' if len(links) > 3 else ''}); `enableServiceLinks: false` drops them",
        )


def _readings(variables: Sequence[Variable], services: Sequence[str]) -> list[_Reading]:
    """Each variable the services read, once per distinct reading (a variant reads it
    another way: another default or kind), in table order."""
    readings: dict[int, _Reading] = {}
    for variable in variables:
        for service in services:
            setting = variable.reading_for(service)
            if setting is not None:
                readings.setdefault(id(setting), _Reading(setting)).services.append(service)
    return list(readings.values())


def _check_value(env: Mapping[str, str], reading: _Reading) -> Iterable[Finding]:
    setting, services = reading.setting, tuple(reading.services)
    if setting.raw(env) is None:
        return
    try:
        value = setting.read(env)
    except ValueError as exc:
        yield Finding("error", setting.name, str(exc), services)
        return
    shown = "(secret, not shown)" if setting.secret else repr(_shown(value))
    yield Finding("ok", setting.name, f"{_set_name(setting, env)} = {shown}", services)
    probe = PATH_PROBES.get(setting.kind.probe or "")
    if probe is not None and isinstance(value, str):
        problem = probe(value)
        if problem:
            yield Finding("error", setting.name, f"{setting.name}: {problem}", services)


def _parses(env: Mapping[str, str], setting: Setting[Any, Any]) -> bool:
    try:
        setting.read(env)
    except ValueError:
        return False
    return True


def _set_name(setting: Setting[Any, Any], env: Mapping[str, str]) -> str:
    """The name the value was read from (an alias, maybe)."""
    return next((n for n in setting.names if env.get(n, "").strip()), setting.name)


def _shown(value: object) -> object:
    return shown_url(value) if isinstance(value, str) and "://" in value else value


def _bootstrap(env: Mapping[str, str], services: Sequence[str]) -> Iterable[Finding]:
    """``KAFKA_BOOTSTRAP_SERVERS`` unset: most services then start an embedded broker,
    which keeps nothing (a production trap); ``replay`` and ``offsets`` refuse to run."""
    if BOOTSTRAP.raw(env) is not None:
        return
    readers = [s for s in services if any(reads(r, s) for r in BOOTSTRAP.used_by)]
    embedded = [s for s in readers if any(reads(r, s) for r in EMBEDDED_BROKER_USERS)]
    needing = [s for s in readers if s not in embedded and s != "broker"]
    if embedded:
        yield Finding(
            "warning",
            BOOTSTRAP.name,
            f"{BOOTSTRAP.name} is not set: an embedded, memory-only broker is started "
            "(everything on it is lost when the service stops)",
            tuple(embedded),
        )
    if needing:
        yield Finding("error", BOOTSTRAP.name, f"{BOOTSTRAP.name} is not set", tuple(needing))


def _service_rules(env: Mapping[str, str], service: str) -> Iterable[Finding]:
    """The service's own settings readers: the rules between variables (its settings',
    and the Kafka connection's for a command that talks to Kafka)."""
    loaders = [SERVICE_READERS.get(service)]
    if any(reads(reader, service) for reader in CLUSTER_READERS):
        loaders.append(_cluster)
    for load in loaders:
        if load is None:
            continue
        try:
            load(env)
        except ValueError as exc:
            yield Finding("error", service, str(exc), (service,))


def probed_values(
    env: Mapping[str, str], services: Sequence[str], probe: str
) -> list[tuple[Setting[Any, Any], str, tuple[str, ...]]]:
    """``(setting, value, services)`` for each variable of a kind with ``probe`` that has
    a value (set, or a default) that parses: what ``--connect`` / ``--bind`` try."""
    found = []
    for reading in _readings(catalog(), services):
        setting = reading.setting
        if setting.kind.probe != probe:
            continue
        try:
            value = setting.read(env)
        except ValueError:
            continue  # reported as an error already
        if isinstance(value, str):
            found.append((setting, value, tuple(reading.services)))
    return found


def _not_read(
    env: Mapping[str, str], variables: Sequence[Variable], services: Sequence[str]
) -> Iterable[Finding]:
    for variable in variables:
        name = next((n for n in variable.declaration.names if env.get(n, "").strip()), None)
        if name is None or any(variable.reading_for(s) for s in services):
            continue
        readers = ", ".join(variable.used_by)
        yield Finding(
            "info",
            name,
            f"{name} is set but not read by {', '.join(services)} (read by {readers})",
        )


# -- What a path must allow ------------------------------------------------------------


def _readable_dir(path: str) -> str:
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{path!r} cannot be read (permissions)"
    return ""


def _writable_dir(path: str) -> str:
    """A directory the service creates files in (or creates): writable where it exists."""
    existing = nearest_existing(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing!r} is not writable"
    return ""


def _readable_file(path: str) -> str:
    return "" if os.access(path, os.R_OK) else f"{path!r} cannot be read (permissions)"


def _writable_file(path: str) -> str:
    """A file the service appends to: its directory must be there (the service waits
    for a missing one, but a check run before it starts should say) and writable."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"its directory {directory!r} does not exist"
    if os.path.exists(path):
        return "" if os.access(path, os.W_OK) else f"{path!r} is not writable"
    return "" if os.access(directory, os.W_OK | os.X_OK) else f"{directory!r} is not writable"


#: Filesystem checks by kind probe (the network ones are ``config_probes``').
PATH_PROBES: dict[str, Callable[[str], str]] = {
    "read_dir": _readable_dir,
    "write_dir": _writable_dir,
    "read_file": _readable_file,
    "write_file": _writable_file,
}


# -- The services' own readers ---------------------------------------------------------


def _cluster(env: Mapping[str, str]) -> object:
    """The Kafka connection's settings (security...), whether or not a bootstrap is set."""
    return KafkaCluster.configured(env)


def _stream(env: Mapping[str, str]) -> object:
    from streams.settings import StreamSettings

    return StreamSettings.from_env(env)


def _sink(env: Mapping[str, str]) -> object:
    from sinks.credentials import CredentialChain
    from sinks.settings import SinkSettings

    return SinkSettings.from_env(env), CredentialChain.from_env(env)


def _gateway(env: Mapping[str, str]) -> object:
    from producers.gateway.settings import GatewaySettings

    return GatewaySettings.from_env(env)


def _client(env: Mapping[str, str]) -> object:
    from producers.client.settings import ClientSettings

    return ClientSettings.from_env(env)


#: How each service reads its settings as a whole, where that adds rules between
#: variables (the other commands' variables are checked one by one).
SERVICE_READERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "stream worker": _stream,
    "replay": _stream,
    "sink worker": _sink,
    "gateway": _gateway,
    "client library": _client,
}


def _secrets(env: Mapping[str, str], services: Sequence[str]) -> list[Finding]:
    """The sink's secrets directory: how many accounts have a usable token file, and
    each file that cannot be used (as the sink would say it; never a token)."""
    from sinks.credentials import survey_secrets_dir
    from sinks.settings import SECRETS_DIR

    sinks = tuple(s for s in services if any(reads(r, s) for r in SECRETS_DIR.used_by))
    if not sinks:
        return []
    try:
        directory = SECRETS_DIR.read(env)
    except ValueError:
        return []  # reported with the variable
    if directory is None:
        return []
    survey = survey_secrets_dir(directory)
    findings = [Finding("error", SECRETS_DIR.name, problem, sinks) for problem in survey.problems]
    if survey.usable:
        findings.append(
            Finding(
                "ok",
                SECRETS_DIR.name,
                f"{SECRETS_DIR.name}: {survey.usable} account(s) with a usable token",
                sinks,
            )
        )
    elif not survey.problems:
        findings.append(
            Finding(
                "warning",
                SECRETS_DIR.name,
                f"{SECRETS_DIR.name}: {directory!r} holds no token file: every account's "
                "events are skipped (no_token) unless another source has them",
                sinks,
            )
        )
    return findings


def _single_account(env: Mapping[str, str], services: Sequence[str]) -> list[Finding]:
    """The sink's single-account credential (``ANALYTICS_AUTH_KIND`` and its secret), read
    as the sink would: whether it can be sent, and of which kind (never the secret)."""
    from sinks.credentials import EnvCredentials
    from sinks.errors import CredentialError
    from sinks.settings import AUTH_KIND

    sinks = tuple(s for s in services if any(reads(r, s) for r in AUTH_KIND.used_by))
    if not sinks:
        return []
    try:
        source = EnvCredentials.from_env(env)
    except ValueError:
        return []  # reported with the variables
    if not source.configured:
        return []
    try:
        credential = source.default()
    except CredentialError as err:
        return [Finding("error", AUTH_KIND.name, str(err), sinks)]
    if credential is None:
        return []
    return [
        Finding(
            "ok",
            AUTH_KIND.name,
            f"single-account credential: {credential.auth_kind}, account "
            f"{credential.account_id or '(none)'}",
            sinks,
        )
    ]
