"""The gateway's answers to an ingest request (pure): status and body from what the
request's lines became.

A line is published (acknowledged by the broker), rejected (by the contract, or refused
by the broker for good: a 4xx reason of its own, never "retry"), or unacknowledged
(the broker did not answer in time: 503, and ``resend`` names those lines). An answer
lists at most :data:`~producers.publishing.ingest.REPORTED_REJECTIONS` rejected lines
and counts the rest, so its size does not grow with the body.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from producers.publishing.ingest import IngestBatch, LineResult
from producers.publishing.transport import (
    Outcome,
    PermanentPublishError,
    PublishError,
    RecordTooLargePublishError,
)

#: Rejection reasons of records the broker (or the producer's own size check) refused.
RECORD_TOO_LARGE = "record_too_large"
REFUSED_BY_BROKER = "refused_by_broker"


@dataclass(slots=True)
class Published:
    """What publishing a batch's facts came to, line by line."""

    published: int = 0
    refused: list[str] = field(default_factory=list)  # reasons, one per refused line
    unacknowledged: list[int] = field(default_factory=list)  # line numbers to resend


def settle(
    batch: IngestBatch, groups: Sequence[Sequence[int]], outcomes: Sequence[Outcome]
) -> Published:
    """Record each record's outcome against the lines it carries (``groups``: the fact
    indices of each record); broker refusals become rejections in ``batch``."""
    result = Published()
    for indices, outcome in zip(groups, outcomes, strict=True):
        lines = [batch.lines[i] for i in indices]
        if outcome is None:
            result.published += len(lines)
        elif isinstance(outcome, PermanentPublishError):
            reason = refusal_reason(outcome)
            for line in lines:
                batch.reject(LineResult(line, False, reason, "", str(outcome)))
                result.refused.append(reason)
        else:
            result.unacknowledged.extend(lines)
    result.unacknowledged.sort()
    return result


def refusal_reason(error: PublishError) -> str:
    return RECORD_TOO_LARGE if isinstance(error, RecordTooLargePublishError) else REFUSED_BY_BROKER


def line_ranges(lines: Iterable[int]) -> list[list[int]]:
    """Sorted line numbers as ``[[first, last], ...]`` runs (a compact ``resend``)."""
    ranges: list[list[int]] = []
    for line in lines:
        if ranges and ranges[-1][1] == line - 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return ranges


def rejection_report(batch: IngestBatch) -> dict[str, Any]:
    listed = batch.rejections()
    return {
        "results": [r.to_json() for r in listed],
        "unlisted_rejections": batch.rejected - len(listed),
    }


def ingest_answer(batch: IngestBatch, outcome: Published) -> tuple[int, dict[str, Any]]:
    """Status and body of a request whose facts were all answered for (no 503)."""
    if not batch.rejected:
        status = 200
    elif outcome.published:
        status = 207
    elif outcome.refused:
        status = 413 if all(r == RECORD_TOO_LARGE for r in outcome.refused) else 422
    else:
        status = 400
    doc = {"accepted": outcome.published, "rejected": batch.rejected}
    return status, doc | rejection_report(batch)


def unavailable_answer(batch: IngestBatch, outcome: Published) -> dict[str, Any]:
    """The body of a 503: what was published, what to send again."""
    return {
        "error": "unavailable",
        "detail": f"the broker did not acknowledge {len(outcome.unacknowledged)} facts in "
        "time; send the lines in 'resend' again (the others were published or rejected)",
        "accepted": outcome.published,
        "rejected": batch.rejected,
        "resend": line_ranges(outcome.unacknowledged),
    } | rejection_report(batch)
