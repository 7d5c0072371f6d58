"""Facts-topic records from encoded facts (pure).

Every record is keyed by its instance id, so one instance's facts stay in one partition,
in order. With ``max_facts_per_record`` above 1, facts of one instance share a record
as a pack (a JSON array, docs/contract.md): far fewer records for the broker and
the stream to handle. One envelope per record (the default) is the spec's plain form.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
    groups = fact_record_groups(
        list(facts), max_facts_per_record=max_facts_per_record, max_record_bytes=max_record_bytes
    )
    return [record for record, _ in groups]


def fact_record_groups(
    facts: Sequence[tuple[str, bytes]],
    *,
    max_facts_per_record: int = 1,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> list[tuple[Record, list[int]]]:
    """:func:`fact_records`, each record with the indices (in ``facts``) of the facts it
    carries: what a caller that answers per fact needs when a record is refused."""
    if max_facts_per_record <= 1:
        return [((instance.encode(), value), [i]) for i, (instance, value) in enumerate(facts)]
    limit = min(max_facts_per_record, MAX_FACTS_PER_PACK)
    by_instance: dict[str, list[int]] = {}
    for index, (instance, _) in enumerate(facts):
        by_instance.setdefault(instance, []).append(index)
    groups: list[tuple[Record, list[int]]] = []
    for instance, indices in by_instance.items():
        key = instance.encode()
        start, size = 0, 1
        for position, index in enumerate(indices):
            value = facts[index][1]
            if position > start and (
                position - start >= limit or size + len(value) + 1 > max_record_bytes
            ):
                groups.append(_group(key, facts, indices[start:position]))
                start, size = position, 1
            size += len(value) + 1
        groups.append(_group(key, facts, indices[start:]))
    return groups


def _group(
    key: bytes, facts: Sequence[tuple[str, bytes]], indices: list[int]
) -> tuple[Record, list[int]]:
    return (key, _pack([facts[i][1] for i in indices])), indices


def _pack(values: list[bytes]) -> bytes:
    return values[0] if len(values) == 1 else join_fact_pack(values)
