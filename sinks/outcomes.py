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


@dataclass(frozen=True, slots=True)
class Delivered:
    """The destination took the batch."""

    outcome: SuccessOutcome
    events: int
    body_bytes: int
    #: From the first attempt to the one that succeeded, retries included.
    seconds: float


@dataclass(frozen=True, slots=True)
class GateSkipped:
    """The auth gate skipped the batch (before the first attempt, or because the
    credential disappeared between attempts): nothing sent, and committed."""

    outcome: ClassVar[str] = "skipped"
    reason: SkipReason
    events: int


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The batch's records are on the events dead-letter topic."""

    outcome: ClassVar[str] = "dead_lettered"
    #: ``http_<status>``, ``too_large``, ``retries_exhausted`` or a decode reason.
    reason: str
    events: int


BatchOutcome = Delivered | GateSkipped | DeadLettered
