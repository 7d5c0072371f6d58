"""Helpers shared by every table of the reducer state: expiry by event time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Touched(Protocol):
    touched_ms: int


def expire_table(table: Mapping[Any, Touched], cutoff_ms: int) -> int:
    """Delete the entries of ``table`` untouched since before ``cutoff_ms``; how many."""
    stale = [key for key, entry in table.items() if entry.touched_ms < cutoff_ms]
    for key in stale:
        del table[key]  # type: ignore[attr-defined]
    return len(stale)
