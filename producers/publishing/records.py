"""Facts-topic records from encoded facts (pure).

Every record is keyed by its instance id, so one instance's facts stay in one partition,
in order. With ``max_facts_per_record`` above 1, facts of one instance share a record
as a pack (a JSON array, docs/contract.md): far fewer records for the broker and
the stream to handle. One envelope per record (the default) is the spec's plain form.
"""

from __future__ import annotations

from collections.abc import Iterable

from codex_analytics.contract import DEFAULT_MAX_RECORD_BYTES, MAX_FACTS_PER_PACK, join_fact_pack

#: Packs are cut at the one record-size limit (``ANALYTICS_MAX_RECORD_BYTES``, see
#: ``codex_analytics.runtime.record_size``): the stream accepts any record up to it.
MAX_RECORD_BYTES = DEFAULT_MAX_RECORD_BYTES

Record = tuple[bytes, bytes]


def fact_records(
    facts: Iterable[tuple[str, bytes]],
    *,
    max_facts_per_record: int = 1,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> list[Record]:
    """``(instance_id, encoded fact)`` pairs to ``(key, value)`` records.

    With packing, the facts of each instance are gathered (in their order) and cut into
    packs of at most ``max_facts_per_record`` facts and ``max_record_bytes`` bytes; the
    order between instances does not matter to the stream, the order within one does,
    and is kept. A fact larger than ``max_record_bytes`` still gets a record of its own:
    the broker or the stream's dead-letter topic says what is wrong with it, never a
    silent drop here.
    """
    if max_facts_per_record <= 1:
        return [(instance.encode(), value) for instance, value in facts]
    limit = min(max_facts_per_record, MAX_FACTS_PER_PACK)
    by_instance: dict[str, list[bytes]] = {}
    for instance, value in facts:
        by_instance.setdefault(instance, []).append(value)
    records: list[Record] = []
    for instance, values in by_instance.items():
        key = instance.encode()
        start, size = 0, 1
        for index, value in enumerate(values):
            if index > start and (
                index - start >= limit or size + len(value) + 1 > max_record_bytes
            ):
                records.append((key, _pack(values[start:index])))
                start, size = index, 1
            size += len(value) + 1
        records.append((key, _pack(values[start:])))
    return records


def _pack(values: list[bytes]) -> bytes:
    return values[0] if len(values) == 1 else join_fact_pack(values)
