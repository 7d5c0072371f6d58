"""Offset continuity: never process a record while an earlier one is missing.

Faust's consumer can drop records around a rebalance or restart (it resumes the stream
partitions before seeking them to the committed offsets, and records fetched in between
are filtered as already read). Processing a later fact of an instance first would make
the reducer treat the missing one as a replay (its ``seq`` is lower), so it would be
lost for good. The guard checks each partition's offsets against the next expected one
and, on a jump, holds back the rest of that partition's batch and asks for a seek back.

A jump shows only when a later record arrives. Records lost between the fetch and the
agent at the *end* of what a partition holds leave no later record to show it: the
guard also compares each partition's fetch position with the offset it expects, and a
position that has passed it with nothing of the partition arriving is a hole too.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Positioned(Protocol):
    """A consumed record, as the guard reads it."""

    @property
    def tp(self) -> Hashable: ...
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=Positioned)


@dataclass(slots=True)
class Continuity(Generic[R]):
    #: Records to reduce, in order (their offsets continue each partition's sequence).
    process: list[R] = field(default_factory=list)
    #: Records to ack once the batch is safely out: ``process`` plus replays already done.
    ack: list[R] = field(default_factory=list)
    #: Partitions with a hole: seek them back to this offset (nothing past it is acked).
    seek: dict[Hashable, int] = field(default_factory=dict)
    #: Records held back behind a hole: neither reduced nor acked now; they are read
    #: again, as new records, once the hole is filled.
    held: list[R] = field(default_factory=list)


class OffsetGuard:
    """The next offset expected per partition of the current assignment.

    A hole asks for one seek; until the expected offset arrives, later records of that
    partition are held back (not reduced, not acked) without seeking again, since every
    seek restarts the fetch. ``due_seeks`` repeats a seek that made no progress."""

    def __init__(self, *, retry_after_s: float = 2.0) -> None:
        self.expected: dict[Hashable, int] = {}
        #: Partitions waiting for a re-read, with when their seek was asked for.
        self.holes: dict[Hashable, float] = {}
        #: When a record of each partition last arrived.
        self.arrived: dict[Hashable, float] = {}
        self.retry_after_s = retry_after_s

    def reset(self) -> None:
        """A new assignment: expectations restart from the committed offsets."""
        self.expected.clear()
        self.holes.clear()
        self.arrived.clear()

    def unknown(self, records: Sequence[Positioned]) -> set[Hashable]:
        """Partitions of ``records`` whose starting offset must be looked up first."""
        expected = self.expected
        return {r.tp for r in records if r.tp not in expected}

    def start(self, tp: Hashable, offset: int) -> None:
        self.expected.setdefault(tp, offset)

    def watch(self, starts: Mapping[Hashable, int], now: float) -> None:
        """Expect partitions none of whose records arrived yet at their ``starts`` (where
        their stream begins), as if a record had arrived ``now``: if every record fetched
        of a partition was lost before delivery, no later one reveals the hole, and only
        :meth:`stalled` can, once it knows where the partition starts."""
        for tp, offset in starts.items():
            if tp not in self.expected:
                self.expected[tp] = offset
                self.arrived[tp] = now

    def check(self, records: Sequence[R], now: float) -> Continuity[R]:
        out: Continuity[R] = Continuity()
        expected, holes, arrived = self.expected, self.holes, self.arrived
        process, ack, held = out.process, out.ack, out.held
        for record in records:
            tp, offset = record.tp, record.offset
            arrived[tp] = now
            want = expected[tp]
            if offset == want:
                expected[tp] = offset + 1
                if holes:
                    holes.pop(tp, None)
                process.append(record)
                ack.append(record)
            elif offset < want:
                ack.append(record)  # delivered again after a seek: already reduced
            else:
                held.append(record)
                if tp not in holes:
                    holes[tp] = now  # a new hole: seek once, hold back what follows it
                    out.seek[tp] = want
                elif now - holes[tp] >= self.retry_after_s:
                    holes[tp] = now
                    out.seek[tp] = want
        return out

    def flow_stopped(self, now: float) -> None:
        """Nothing can arrive now: a rebalance stopped the consumer's flow (Faust clears
        its stream buffers, pauses the partitions and, once assigned, seeks them to the
        committed offsets itself). Waiting then is no sign of a hole: the waits of
        :meth:`stalled` and :meth:`due_seeks` restart, so neither asks for a seek until
        records had ``retry_after_s`` to arrive with the flow running. Asked while the
        group rebalanced, they found every partition whose buffered records Faust
        cleared "stalled" and sought it back, twice, to no effect (Faust's own seek at
        the assignment overrode it): 2 to 8 false stalls in every staggered two-worker
        run of ``python -m bench stress``."""
        arrived, holes = self.arrived, self.holes
        for tp in arrived:
            arrived[tp] = now
        for tp in holes:
            holes[tp] = now

    def forget(self, tp: Hashable) -> None:
        """``tp`` is no longer ours (revoked): no hole to fill, no seek to repeat. If it
        comes back, it starts again from the committed offset, which a hole's records
        never passed (nothing past a hole is acked)."""
        self.expected.pop(tp, None)
        self.holes.pop(tp, None)
        self.arrived.pop(tp, None)

    def due_seeks(self, now: float) -> dict[Hashable, int]:
        """Seeks to repeat for holes that no record has filled in ``retry_after_s``.

        ``check`` repeats a seek only when more records of the partition arrive; once
        everything past the hole has been fetched and held back, nothing arrives, so the
        batch loop asks here while it waits."""
        due: dict[Hashable, int] = {}
        for tp, asked_at in self.holes.items():
            if now - asked_at >= self.retry_after_s:
                self.holes[tp] = now
                due[tp] = self.expected[tp]
        return due

    def stalled(self, positions: Mapping[Hashable, int], now: float) -> dict[Hashable, int]:
        """Seeks for partitions whose fetch position (``positions``: the next offset the
        consumer fetches) has passed the expected offset while no record of theirs
        arrived for ``retry_after_s``: the records in between were fetched and lost
        before they reached the worker (Faust clearing its stream buffers did that),
        and none after them will come to show the hole. Each becomes a hole: sought
        back now, and again by ``due_seeks`` until its expected offset arrives.

        The caller asks only while it has nothing buffered: records on their way from
        the fetch would look the same for a moment, hence the wait. A seek asked for
        records that were only late costs a re-read (repeats are acked, not reduced)."""
        seeks: dict[Hashable, int] = {}
        for tp, position in positions.items():
            want = self.expected.get(tp)
            if want is None or tp in self.holes or position <= want:
                continue
            if now - self.arrived.get(tp, now) >= self.retry_after_s:
                self.holes[tp] = now
                seeks[tp] = want
        return seeks

    def next_retry_in(self, now: float) -> float | None:
        """Seconds until the oldest hole is due for another seek (None: no hole)."""
        if not self.holes:
            return None
        return max(0.0, min(self.holes.values()) + self.retry_after_s - now)
