"""What became of one batch: the delivery step's answer, which ``SinkMetrics.record`` counts.

Every closed batch ends in exactly one of these, and only then is it done (its offsets
may be committed): delivered or captured by the destination, skipped by the auth gate,
or dead-lettered. ``outcome`` is the ``codex_sink_events{outcome}`` label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .auth import SkipReason

#: What a batch the destination took counts as: ``delivered`` (HTTP) or ``captured``.
SuccessOutcome = Literal["delivered", "captured"]


#: Events the gate kept out of a request, by reason.
GateCounts = tuple[tuple[SkipReason, int], ...]


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination took the batch (what the gate let through of it)."""

    outcome: SuccessOutcome
    #: The events sent.
    events: int
    body_bytes: int
    #: From the first attempt to the one that succeeded, retries included.
    seconds: float
    #: The batch's events the gate kept out (Profile J's API-key filter, or the events
    #: of a contract whose gate skips the route), by reason: counted as skipped.
    skipped: GateCounts = ()


@dataclass(frozen=True, slots=True)
class GateSkipped:
    """The auth gate let nothing of the batch through (before the first attempt, or
    because the credential changed between attempts): nothing sent, and committed."""

    outcome: ClassVar[str] = "skipped"
    #: Why (the first reason, when the batch's events were skipped for several).
    reason: SkipReason
    #: Every event of the batch.
    events: int
    #: The other reasons and their events, when there were several (a batch of both
    #: contracts, or an API-key route's filtered events besides a skipped contract).
    others: GateCounts = ()

    @property
    def by_reason(self) -> GateCounts:
        others = sum(count for _, count in self.others)
        return ((self.reason, self.events - others), *self.others)

    @classmethod
    def of(cls, counts: GateCounts) -> GateSkipped:
        """The outcome of a batch skipped for ``counts`` (at least one reason)."""
        (reason, _), *others = counts
        return cls(reason, sum(count for _, count in counts), tuple(others))


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The batch's records are on the events dead-letter topic."""

    outcome: ClassVar[str] = "dead_lettered"
    #: ``http_<status>``, ``too_large``, ``retries_exhausted`` or a decode reason.
    reason: str
    events: int


BatchOutcome = Delivered | GateSkipped | DeadLettered
