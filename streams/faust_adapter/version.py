"""The faust-streaming releases the adapter is written against, checked on import."""

from __future__ import annotations

import re
from importlib import metadata

#: The same range as the ``faust-streaming`` requirement in pyproject.toml (a unit test
#: compares them). The overrides in :mod:`.transport` and the private names read in
#: :mod:`.store` and :mod:`.consumer` were checked against these releases only.
SUPPORTED_RANGE = ">=0.15.3,<0.16"
_LOWEST = (0, 15, 3)
_BELOW = (0, 16)


class UnsupportedFaustVersion(ImportError):
    """The installed faust-streaming is outside :data:`SUPPORTED_RANGE`."""


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``(0, 15, 3)`` for ``0.15.3`` (or for
    ``0.15.3rc1``; a part without leading digits ends the release)."""
    numbers: list[int] = []
    for part in version.split(".")[:3]:
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def check_faust_version(version: str) -> None:
    """Raise :class:`UnsupportedFaustVersion` unless ``version`` is in the range."""
    if _LOWEST <= release(version) < _BELOW:
        return
    raise UnsupportedFaustVersion(
        f"streams.faust_adapter supports faust-streaming {SUPPORTED_RANGE}, "
        f"but faust-streaming {version} is installed. The adapter overrides Faust "
        "methods and reads private names that change between releases: install a "
        "supported version (constraints.txt pins one), or port the adapter and its "
        "hook test (tests/unit/test_stream_faust_hooks.py) to the new one."
    )


def require_supported_faust() -> None:
    """Check the installed faust-streaming (before anything imports it)."""
    try:
        installed = metadata.version("faust-streaming")
    except metadata.PackageNotFoundError:
        raise UnsupportedFaustVersion(
            f"streams.faust_adapter needs faust-streaming {SUPPORTED_RANGE}, which is not installed"
        ) from None
    check_faust_version(installed)
