"""Typed errors of the wire contract.

Decoding never raises anything but :class:`DecodeError`: the stream worker turns it into
a dead-letter record (reason and path become headers), the gateway into a per-line
answer, the ``reduce`` command into a line on stderr.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class DecodeReason(StrEnum):
    """Why a record was rejected. The values are stable: they go into DLQ headers."""

    TOO_LARGE = "too_large"
    #: A string longer than its contract limit (``docs/contract.md``, "Limits").
    TOO_LONG = "too_long"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    WRONG_TYPE = "wrong_type"
    MISSING_KEY = "missing_key"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_ENUM_VALUE = "unknown_enum_value"
    BAD_ENVELOPE_VERSION = "bad_envelope_version"
    INVALID_VALUE = "invalid_value"
    #: A bug in the decoder itself; kept so that decoding still never raises anything else.
    INTERNAL = "internal"


#: Longest ``detail`` and longest path segment kept in a :class:`DecodeError`. Both can
#: quote the caller's own text (an unknown tag, an unexpected key): clipped, an error is
#: always small enough for a log line, a gateway answer or a dead-letter header.
MAX_DETAIL_CHARS = 512
MAX_PATH_SEGMENT_CHARS = 128


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class ContractError(Exception):
    """Base class of every error raised by :mod:`codex_analytics.contract`."""


class DecodeError(ContractError):
    """Bytes or a JSON value that do not satisfy the contract.

    ``path`` names the offending field with dots and ``[i]`` indexes, e.g.
    ``payload.invocations[2].skill_scope``; it is ``""`` when the whole record is at fault.
    """

    def __init__(self, reason: DecodeReason, path: str, detail: str) -> None:
        path = clip(path, MAX_PATH_SEGMENT_CHARS)
        detail = clip(detail, MAX_DETAIL_CHARS)
        super().__init__(reason, path, detail)
        self.reason = reason
        self.path = path
        self.detail = detail

    def __str__(self) -> str:
        # Built on demand: nested decoders prefix ``path`` while the error travels up.
        return f"{self.path or '<record>'}: {self.reason.value}: {self.detail}"

    def __repr__(self) -> str:
        return f"DecodeError({self.reason.value!r}, {self.path!r}, {self.detail!r})"

    def within(self, key: str | int) -> DecodeError:
        """Prefix the path with the key (or list index) of the enclosing container."""
        head = f"[{key}]" if isinstance(key, int) else clip(key, MAX_PATH_SEGMENT_CHARS)
        if not self.path:
            self.path = head
        elif self.path.startswith("["):
            self.path = head + self.path
        else:
            self.path = f"{head}.{self.path}"
        return self


def describe(value: Any) -> str:
    """A short, safe description of a JSON value for error messages (never the value itself
    when it is large: facts may carry user content)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
