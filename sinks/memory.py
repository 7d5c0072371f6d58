"""What bounds the sink worker's memory, as a formula of its settings (docs/sink.md).

A sink holds, per assigned partition: its open and closed batches (about
``max_buffered_records`` each, plus the overshoot of one ``getmany``), the one record
set aiokafka prefetched for it, and one request body in flight; and once, the fetch
response being decoded (the response and its per-partition copies). Everything else
(the interpreter, aiokafka, httpx, aiohttp, prometheus) is the base.

The backlog waiting in Kafka does not appear: a partition whose lane is full is not
fetched (``sinks.worker``), and nothing it fetched or sent waits for the cyclic
garbage collector (``sinks.http``).
"""

from __future__ import annotations

#: The most the consumer asks a broker for in one fetch (aiokafka's default is 50 MB),
#: and the most it asks per partition. The embedded broker does not always honour the
#: per-partition limit (it answered 5 MiB for one partition asked for 1 MiB) but keeps
#: to the total, give or take one producer batch.
FETCH_MAX_BYTES = 1024 * 1024
#: A producer batch (``runtime.kafka.producer_options``): a broker answers in whole
#: batches, so a fetch may pass its limit by one.
PRODUCER_BATCH_BYTES = 256 * 1024
#: Records one ``getmany`` returns at most: a lane may pass its limit by that many.
GETMANY_MAX_RECORDS = 1000
#: A record held by the sink costs its bytes twice (the raw record, kept for dead
#: letters, and the event's JSON) plus this much in objects (measured: ~560 B).
RECORD_OVERHEAD_BYTES = 600
#: The sink worker's resident memory once it runs, before it holds any event:
#: 58-62 MiB measured on Python 3.11 (``python -m bench.sink_memory``).
BASE_BYTES = 64 * 1024 * 1024


def resident_bound_bytes(
    *,
    partitions: int,
    max_buffered_records: int,
    batch_max_bytes: int,
    event_bytes: int,
) -> int:
    """The most resident memory a sink worker should reach with these settings, for
    ``partitions`` assigned partitions and events of ``event_bytes`` on average."""
    record = 2 * event_bytes + RECORD_OVERHEAD_BYTES
    held_records = 2 * max_buffered_records + GETMANY_MAX_RECORDS
    fetched = FETCH_MAX_BYTES + PRODUCER_BATCH_BYTES
    per_partition = held_records * record + fetched + batch_max_bytes
    return BASE_BYTES + partitions * per_partition + 2 * fetched
