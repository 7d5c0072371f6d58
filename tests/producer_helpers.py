"""An in-memory fact transport for unit tests of the client (the Kafka one is covered
by the integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from producers.publishing.transport import (
    PermanentPublishError,
    PublishError,
    RecordTooLargePublishError,
    RetryablePublishError,
)


class MemoryTransport:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.calls = 0
        self.fail_retryable = 0
        self.fail_permanent = False
        #: Records whose value holds these bytes are refused for good, the rest kept
        #: (as a broker refuses one record over its size limit).
        self.refuse_containing: bytes | None = None
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def start(self) -> None:
        pass

    async def send(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_permanent:
            raise PermanentPublishError("MessageSizeTooLargeError: too big")
        if self.fail_retryable:
            self.fail_retryable -= 1
            raise RetryablePublishError("KafkaConnectionError: broker away")
        marker = self.refuse_containing
        outcomes: list[PublishError | None] = []
        for record in records:
            if marker is not None and marker in record[1]:
                outcomes.append(RecordTooLargePublishError("MessageSizeTooLargeError: too big"))
            else:
                outcomes.append(None)
                self.records.append(record)
        if any(outcomes):
            raised = RecordTooLargePublishError(f"{sum(map(bool, outcomes))} records refused")
            raised.per_record = tuple(outcomes)
            raise raised

    async def probe(self) -> bool:
        return not self.fail_retryable

    async def close(self) -> None:
        self.closed = True

    def facts(self) -> list[dict]:
        out: list[dict] = []
        for _, value in self.records:
            doc = orjson.loads(value)
            out.extend(doc if isinstance(doc, list) else [doc])
        return out
