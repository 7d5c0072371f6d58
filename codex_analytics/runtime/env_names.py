"""Variables in our namespaces that nothing declares: misspellings, mostly.

A misspelled variable (``..._MAX_EVNTS`` for ``..._MAX_EVENTS``) is not an error by
itself: the service reads the default of the variable that was meant, and nothing says
so. Every service therefore logs one warning per unknown ``ANALYTICS_*``, ``KAFKA_*`` or
``CODEX_ANALYTICS_*`` variable at start, with the closest declared name, and
``codex-analytics config check`` reports them as errors.

The kernel cannot list the declared names (they live in the services' settings
modules, which it may not import): callers pass them in, from
:func:`codex_analytics.cli.settings_catalog.declared_names`.

Kubernetes puts ``<SERVICE>_SERVICE_HOST``, ``<SERVICE>_PORT_9092_TCP``... into every
pod for every Service of the namespace (``enableServiceLinks``), so a Service named
``kafka`` or ``codex-analytics-gateway`` would look like a crowd of misspellings: those
are recognised by name *and* value and left alone.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

#: The prefixes of the variables we own or read: an unknown name under them is a mistake.
WATCHED_PREFIXES = ("ANALYTICS_", "KAFKA_", "CODEX_ANALYTICS_")
#: How close a declared name must be to be offered (difflib's ratio): a dropped or
#: swapped letter, a word too many, scores 0.85-0.97; unrelated names of the same
#: prefix score up to 0.7.
SUGGESTION_CUTOFF = 0.75

_SERVICE_LINK = (
    (re.compile(r".+_SERVICE_HOST"), re.compile(r"[0-9A-Fa-f.:]+")),
    (re.compile(r".+_SERVICE_PORT(_[A-Z0-9_]+)?"), re.compile(r"\d+")),
    (re.compile(r".+_PORT"), re.compile(r"(tcp|udp|sctp)://\S+:\d+")),
    (re.compile(r".+_PORT_\d+_(TCP|UDP|SCTP)"), re.compile(r"(tcp|udp|sctp)://\S+:\d+")),
    (re.compile(r".+_PORT_\d+_(TCP|UDP|SCTP)_PROTO"), re.compile(r"tcp|udp|sctp")),
    (re.compile(r".+_PORT_\d+_(TCP|UDP|SCTP)_PORT"), re.compile(r"\d+")),
    (re.compile(r".+_PORT_\d+_(TCP|UDP|SCTP)_ADDR"), re.compile(r"[0-9A-Fa-f.:]+")),
)

log = logging.getLogger("codex_analytics.config")


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    """A set variable under :data:`WATCHED_PREFIXES` that no declaration names."""

    name: str
    #: The closest declared name, when one is close enough to be a likely meaning.
    suggestion: str | None

    def describe(self) -> str:
        """One line; never the value (it may be a secret)."""
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"unknown variable {self.name} is ignored{hint}"


def is_service_link(name: str, value: str) -> bool:
    """Whether ``name=value`` is one of the variables Kubernetes sets for a Service."""
    return any(
        pattern.fullmatch(name) and shape.fullmatch(value.strip())
        for pattern, shape in _SERVICE_LINK
    )


def watched(name: str) -> bool:
    return name.startswith(WATCHED_PREFIXES)


def suggest(name: str, known: Collection[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=SUGGESTION_CUTOFF)
    return close[0] if close else None


def unknown_variables(env: Mapping[str, str], known: Collection[str]) -> list[UnknownVariable]:
    """The watched variables of ``env`` that are set (not blank), not in ``known`` and not
    a Kubernetes service link, in name order."""
    return [
        UnknownVariable(name, suggest(name, known))
        for name in sorted(env)
        if watched(name)
        and name not in known
        and env[name].strip()
        and not is_service_link(name, env[name])
    ]


def warn_unknown_variables(
    env: Mapping[str, str], known: Collection[str], *, service: str
) -> list[UnknownVariable]:
    """Log one warning per unknown variable (at a service's start, once logging is set
    up); return them."""
    found = unknown_variables(env, known)
    for unknown in found:
        log.warning(
            "%s: %s",
            service,
            unknown.describe(),
            extra={"variable": unknown.name, "suggestion": unknown.suggestion},
        )
    return found
