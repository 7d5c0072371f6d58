"""Points in time as operators type them: an ISO 8601 time, epoch milliseconds, or a
duration ago (``2h``, ``30m``, ``1d``, ``1h30m``), as Kafka's tools take ``--by-duration``.

Pure: the caller passes "now", so that one command resolves every moment it was given
against the same clock reading, and tests need no clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO_DURATION = re.compile(
    r"p(?:(?P<d>\d+)d)?(?:t(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?)?"
)
_EPOCH_MS = re.compile(r"\d{10,}")

#: What a moment may look like, for error messages.
MOMENT_FORMS = (
    "an ISO 8601 time with its zone (2026-11-22T08:00:00Z), epoch milliseconds, "
    "or a duration ago (2h, 30m, 1d, 1h30m)"
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: one or more ``NUMBER UNIT`` parts, units ``w d h m s``
    (``90s``, ``2h``, ``1h30m``, ``1.5d``); a ``ValueError`` names the text otherwise.
    An ISO 8601 duration (``PT2H``) is taken too, as Kafka's ``--by-duration`` takes it."""
    raw = text.strip().lower()
    iso = _ISO_DURATION.fullmatch(raw)
    if iso is not None and raw not in ("p", "pt"):
        return sum(float(n) * _UNIT_SECONDS[u] for u, n in iso.groupdict().items() if n)
    if not _DURATION.fullmatch(raw):
        raise ValueError(f"{text!r} is not a duration: expected e.g. 2h, 30m, 1d, 1h30m")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(raw))


def is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def parse_moment(text: str, *, now_ms: int) -> int:
    """Epoch milliseconds of ``text``: an ISO 8601 time (its zone required: a time
    without one means something else on every machine), epoch milliseconds, or a
    duration ago, counted back from ``now_ms``."""
    raw = text.strip()
    if _EPOCH_MS.fullmatch(raw):
        return int(raw)
    if is_duration(raw):
        return now_ms - int(parse_duration(raw) * 1000)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: expected {MOMENT_FORMS}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r}: give the time zone (Z or +HH:MM)")
    return int(moment.timestamp() * 1000)


def iso_ms(epoch_ms: int) -> str:
    """``epoch_ms`` as an ISO 8601 UTC time to the millisecond (``...T08:00:00.123Z``)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
