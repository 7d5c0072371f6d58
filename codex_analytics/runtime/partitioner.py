"""The producers' partitioner: aiokafka's default, with each recent key's hash kept.

aiokafka's ``DefaultPartitioner`` hashes a record's key with murmur2 (as the Java
client does, so every client puts a key in the same partition), in pure Python: ~4 µs
a record, paid again for every record of a key. Our keys repeat: an events record's key
is its account's route, a fact's its instance id. :class:`KeyedPartitioner` keeps the
hash of the last ``max_keys`` distinct keys and picks the partition exactly as the
default does; a key-less record (or a key that is not ``bytes``) goes to the default.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner, murmur2

#: Distinct keys whose hash is kept (~100 B each with the key); past it the memo starts
#: again: a bound, not an eviction policy, since a worker's keys are few and repeat.
MAX_KEYS = 65_536


class KeyedPartitioner:
    """``(key, all_partitions, available) -> partition``, as aiokafka calls it."""

    __slots__ = ("_default", "_hashes", "_max_keys")

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._default = DefaultPartitioner()
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if type(key) is not bytes:
            partition: int = self._default(key, all_partitions, available)
            return partition
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]

    def __len__(self) -> int:
        return len(self._hashes)
