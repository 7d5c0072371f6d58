"""Sweeping the state of instances that went silent: the pure part.

The reducer expires what an instance holds only when that instance sends its next fact
(its clock is its own event time). Instance ids are per process start, so most
instances never send another one: without a sweep, the table (and its changelog) would
grow with every process that ever ran. The worker therefore stamps every state it
writes with the time it wrote it and the partition it lives in, and now and then
deletes the states nobody wrote for longer than the retention.

Why processing time and not event time: event time comes from the clients' clocks, and
one client whose clock runs ahead would sweep everybody else. The worker sweeps only
partitions it has fully processed, so "not written for the retention" means "no fact
for the retention". A state swept too early is the same as one the reducer expired,
because the retention is at least both horizons; only its duplicate guard (``last_seq``)
is gone, so a copy of an old fact arriving more than the retention late is applied
again. Replays (``streams.replay``) never sweep and give the same events.

The stamp is an 11-byte prefix: a version byte, the write time in ms and the partition.
States written before the stamp existed (they start with ``{``) read as unstamped.
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

_STAMP = struct.Struct(">BqH")
_VERSION = 1
STAMP_SIZE = _STAMP.size


def stamp(state: bytes, written_ms: int, partition: int) -> bytes:
    """``state`` as it is stored: prefixed with when and where it was written."""
    return _STAMP.pack(_VERSION, written_ms, partition) + state


def state_of(value: bytes | None) -> bytes | None:
    """Just the state bytes of a stored value (None stays None)."""
    if value is None or value[:1] != b"\x01":
        return value
    return value[STAMP_SIZE:]


def written_before(value: bytes | None, cutoff_ms: int) -> bool:
    """Whether a stored value is a stamped state last written before ``cutoff_ms``.

    The sweep walks a store in slices between batches, and a RocksDB iterator reads the
    snapshot taken when the walk started: a state a batch rewrote since still shows its
    old stamp there. Before deleting, the sweep asks this of the live value."""
    if value is None or value[:1] != b"\x01":
        return False
    _, written_ms, _ = _STAMP.unpack_from(value)
    return bool(written_ms < cutoff_ms)


def unstamped(value: bytes | None) -> bool:
    """Whether a stored value is a state from before stamps (JSON)."""
    return value is not None and value[:1] == b"{"


@dataclass(slots=True)
class SweepFindings:
    #: (key, partition) of states last written before the cutoff: delete them.
    idle: list[tuple[bytes, int]] = field(default_factory=list)
    #: (key, partition) of owned states without a stamp: the worker stamps them now, and
    #: they age from there.
    unstamped: list[tuple[bytes, int]] = field(default_factory=list)
    #: States looked at and kept.
    kept: int = 0


def find_idle(
    items: Iterable[tuple[bytes, bytes, int | None]], cutoff_ms: int, partitions: Container[int]
) -> SweepFindings:
    """States in ``partitions`` last written before ``cutoff_ms``, from ``(key, value,
    partition the store keeps it in, if it knows)``. States of other partitions (not
    owned, or not fully processed) are left alone."""
    found = SweepFindings()
    for key, value, store_partition in items:
        if value[:1] != b"\x01":
            # A state from before stamps (JSON); anything else (the changelog's end
            # markers) is not a state.
            if unstamped(value) and store_partition is not None and store_partition in partitions:
                found.unstamped.append((key, store_partition))
            continue
        _, written_ms, partition = _STAMP.unpack_from(value)
        if partition not in partitions:
            continue
        if written_ms < cutoff_ms:
            found.idle.append((key, partition))
        else:
            found.kept += 1
    return found
