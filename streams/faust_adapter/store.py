"""The state table's local store, with the operations the worker needs.

The worker never writes through the Faust table (``table[key] = value`` picks the
changelog partition from the "current event" and drops the send future): it sends the
changelog records itself and writes the store, Faust's ``table.data`` (a dict for
``memory://``, one RocksDB per partition for ``rocksdb://``), once the broker has them.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from faust.streams import _current_event
from faust.types import TP


class StateStore:
    """Instance states by key (bytes), each kept in the store of its partition."""

    def __init__(self, table: Any, *, partitioned: bool) -> None:
        #: The Faust table; its store (``table.data``) is looked up on every access.
        self._table = table
        #: One RocksDB per partition (True), or one dict (False).
        self.partitioned = partitioned
        self.changelog: str = table.changelog_topic.get_topic_name()
        self._events: dict[int, _PartitionEvent] = {}

    def get(self, key: bytes, partition: int) -> bytes | None:
        """The stored value of ``key``, which lives in ``partition``."""
        with self._in_partition(partition):
            value: bytes | None = self._table.data.get(key)
            return value

    def put(self, key: bytes, value: bytes, partition: int, offset: int) -> None:
        """Store ``value``, just acknowledged at ``offset`` of the changelog ``partition``."""
        store = self._table.data
        with self._in_partition(partition):
            store[key] = value
            self._persisted(store, partition, offset)

    def delete(self, key: bytes, partition: int, offset: int) -> None:
        """Forget ``key``, whose tombstone was just acknowledged at ``offset`` of the
        changelog ``partition``."""
        store = self._table.data
        store.pop(key, None)
        if not self.partitioned:
            store._key_partition.pop(key, None)
        self._persisted(store, partition, offset)

    def items(self) -> Iterator[tuple[bytes, bytes, int | None]]:
        """(key, value, partition if the store knows it) of every stored state; lazily,
        so a rebalance that closes a store can end the iteration with an error."""
        store = self._table.data
        if self.partitioned:
            for partition, db in list(store._dbs.items()):
                for key, value in store._visible_items(db):
                    yield key, value, partition
        else:
            # The memory store knows the partition of what it recovered from the
            # changelog only.
            data, partitions = store.data, store._key_partition
            for key in list(data):  # a snapshot of the keys: batches change the dict
                value = data.get(key)
                if value is not None:
                    yield key, value, partitions.get(key)

    def _persisted(self, store: Any, partition: int, offset: int) -> None:
        """Partitioned stores (RocksDB) keep the changelog offset their data reached:
        on a restart, only the changelog past it is read (the memory store ignores it)."""
        store.set_persisted_offset(TP(self.changelog, partition), offset)

    @contextlib.contextmanager
    def _in_partition(self, partition: int) -> Iterator[None]:
        """Stores pick their partition from Faust's current event (RocksDB keeps one DB
        per partition and reads only the current event's), and in a batch there is no
        meaningful one: name an event of the key's partition for one store access."""
        event = self._events.get(partition)
        if event is None:
            event = self._events[partition] = _PartitionEvent(partition)
        token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
        try:
            yield
        finally:
            _current_event.reset(token)


class _PartitionEvent:
    """What a store reads of the current event: ``event.message.partition``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _PartitionOnly(partition)


class _PartitionOnly:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition
