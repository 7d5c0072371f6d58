"""Facts-topic records from encoded facts (pure).

Every record is keyed by its instance id, so one instance's facts stay in one partition,
in order. With ``max_facts_per_record`` above 1, consecutive facts of one instance share
a record as a pack (a JSON array, docs/contract.md): far fewer records for the broker and
the stream to handle. One envelope per record (the default) is the spec's plain form.
"""

from __future__ import annotations

from collections.abc import Iterable

from codex_analytics.contract import MAX_FACTS_PER_PACK

#: Below aiokafka's default ``max_request_size`` (1 MiB) with room for the batch header.
MAX_RECORD_BYTES = 900 * 1024

Record = tuple[bytes, bytes]


def fact_records(
    facts: Iterable[tuple[str, bytes]],
    *,
    max_facts_per_record: int = 1,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> list[Record]:
    """``(instance_id, encoded fact)`` pairs, in order, to ``(key, value)`` records.

    A pack only ever joins neighbours of one instance, so each instance's order is kept
    within and across records. A fact larger than ``max_record_bytes`` still gets a
    record of its own: the broker or the stream's dead-letter topic says what is wrong
    with it, never a silent drop here.
    """
    if max_facts_per_record <= 1:
        return [(instance.encode(), value) for instance, value in facts]
    limit = min(max_facts_per_record, MAX_FACTS_PER_PACK)
    records: list[Record] = []
    current: str | None = None
    pack: list[bytes] = []
    size = 0

    def close() -> None:
        if pack:
            assert current is not None
            value = pack[0] if len(pack) == 1 else b"[" + b",".join(pack) + b"]"
            records.append((current.encode(), value))
            pack.clear()

    for instance, value in facts:
        if instance != current or len(pack) >= limit or size + len(value) + 1 > max_record_bytes:
            close()
            current, size = instance, 1
        pack.append(value)
        size += len(value) + 1
    close()
    return records
