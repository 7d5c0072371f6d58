"""Publish a stream of JSON-lines fact envelopes: validated line by line, bad lines
reported and skipped, good ones published in chunks (acknowledged before the next
chunk), optionally at a limited rate. Serves ``codex-analytics produce`` and
``codex-analytics generate --to-kafka``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from codex_analytics.runtime.progress import Progress
from producers.publishing.ingest import IngestBatch, LineResult, validate_line
from producers.publishing.records import MAX_RECORD_BYTES, fact_records
from producers.publishing.transport import (
    FactTransport,
    PublishError,
    RetryablePublishError,
    send_with_retry,
)

#: Rejections kept in the summary (all of them are counted, and passed to the callback).
KEPT_REJECTIONS = 50


@dataclass(slots=True)
class BulkSummary:
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    records: int = 0
    elapsed_s: float = 0.0
    rejections: list[LineResult] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0


class BulkPublishError(Exception):
    """The broker did not take the facts (the summary says how far it got)."""

    def __init__(self, message: str, summary: BulkSummary) -> None:
        super().__init__(message)
        self.summary = summary


async def publish_lines(
    lines: Iterable[bytes],
    transport: FactTransport,
    *,
    max_facts_per_record: int = 1,
    max_record_bytes: int = MAX_RECORD_BYTES,
    rate: float | None = None,
    retry_for_s: float = 60.0,
    progress: Progress | None = None,
    on_rejection: Callable[[LineResult], None] | None = None,
) -> BulkSummary:
    summary = BulkSummary()
    started = time.monotonic()
    chunk_lines = 2000 if rate is None else max(1, min(2000, int(rate / 20)))
    batch = IngestBatch(keep_rejections=None)  # a chunk: every rejection, for the callback

    async def flush() -> None:
        nonlocal batch
        for result in batch.rejections():
            summary.rejected += 1
            if len(summary.rejections) < KEPT_REJECTIONS:
                summary.rejections.append(result)
            if on_rejection is not None:
                on_rejection(result)
        if batch.facts:
            records = fact_records(
                batch.facts,
                max_facts_per_record=max_facts_per_record,
                max_record_bytes=max_record_bytes,
            )
            await _send(transport, records, retry_for_s, summary)
            summary.records += len(records)
            summary.accepted += len(batch.facts)
        batch = IngestBatch(keep_rejections=None)
        summary.elapsed_s = time.monotonic() - started
        if rate is not None:
            ahead = summary.accepted / rate - summary.elapsed_s
            if ahead > 0:
                await asyncio.sleep(ahead)
        if progress is not None:
            progress.show(
                f"facts published {summary.accepted:,}  rejected {summary.rejected:,}  "
                f"{progress.rate(summary.accepted):,.0f}/s"
            )

    for number, raw in enumerate(lines, start=1):
        summary.lines = number
        validate_line(batch, number, raw, max_record_bytes)
        if batch.seen >= chunk_lines:
            await flush()
    await flush()
    summary.elapsed_s = time.monotonic() - started
    if progress is not None:
        progress.done()
    return summary


async def _send(
    transport: FactTransport,
    records: list[tuple[bytes, bytes]],
    retry_for_s: float,
    summary: BulkSummary,
) -> None:
    until = time.monotonic() + retry_for_s
    try:
        await send_with_retry(transport, records, deadline=lambda: until)
    except RetryablePublishError as exc:
        raise BulkPublishError(
            f"the broker did not take the facts within {retry_for_s:g} s: {exc}", summary
        ) from exc
    except PublishError as exc:
        raise BulkPublishError(f"the broker refused the facts: {exc}", summary) from exc
