"""Typed reads of environment settings, shared by every service's settings object.

Each parser names the variable in its error, so a bad deployment fails at start with a
message that says what to fix. An empty value counts as unset (as upstream treats
``CODEX_ANALYTICS_EVENTS_CAPTURE_FILE``), and surrounding blanks are ignored.

The ``parse_*`` functions turn one present value into a typed one; the declarations of
:mod:`codex_analytics.runtime.config` read through them. The ``env_*`` helpers are the
same reads for code that names a variable directly.
"""

from __future__ import annotations

from collections.abc import Mapping

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
