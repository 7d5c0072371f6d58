"""The one record-size limit, and how a record is measured against it.

``ANALYTICS_MAX_RECORD_BYTES`` (declared in :mod:`codex_analytics.runtime.kafka`,
default :data:`~codex_analytics.contract.DEFAULT_MAX_RECORD_BYTES`) is the largest
record, key + value + headers, that any service writes or accepts. Everything else is
derived from it, so that no two limits can contradict each other:

- every producer's ``max_request_size`` is :func:`max_request_bytes` of it: the limit
  plus the record's framing, which aiokafka counts and we do not. A record that passed
  our own check can therefore never be refused by the client;
- the stream sizes each output with :func:`record_bytes` before it sends it, and a
  dead letter is cut to fit (:func:`codex_analytics.runtime.deadletter.fit`);
- the decoders' "too large" checks and the producers' packing use the limit itself.

The broker must accept :func:`max_request_bytes` of the limit: at the default that is
1,001,024 bytes, under Kafka's default ``message.max.bytes`` (1,048,588).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Room for what a produced record carries besides its key, value and headers: aiokafka
#: counts a batch header (61 bytes), a record's own overhead (21) and the varints of
#: each header in its size estimate (``DefaultRecordBatchBuilder.estimate_size_in_bytes``).
RECORD_FRAMING_BYTES = 1024


def max_request_bytes(max_record_bytes: int) -> int:
    """A producer's ``max_request_size`` for records of at most ``max_record_bytes``."""
    return max_record_bytes + RECORD_FRAMING_BYTES


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]] = ()
) -> int:
    """The size of a record as the limit counts it: key, value and headers."""
    size = len(key or b"") + len(value or b"")
    for name, header in headers:
        size += len(name.encode()) + len(header)
    return size
