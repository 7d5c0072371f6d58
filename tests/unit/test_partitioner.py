"""The producers' partitioner: aiokafka's default partitions, each key hashed once."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from codex_analytics.runtime import partitioner as partitioner_module
from codex_analytics.runtime.kafka import KafkaCluster, producer_options
from codex_analytics.runtime.partitioner import KeyedPartitioner


def test_every_key_lands_where_the_default_partitioner_puts_it() -> None:
    # The sink relies on one account's events sharing a partition, and other clients
    # of the topic (Java, librdkafka with murmur2) on the same mapping.
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randrange(0, 40)) for _ in range(2_000)]
    keys += [b'["acct-1",false]', b'["acct-1",true]', b"inst-00001", b""]
    ours, default = KeyedPartitioner(), DefaultPartitioner()
    for partitions in (1, 3, 8, 50):
        all_partitions = list(range(partitions))
        for key in keys + keys:  # the second time from the memo
            assert ours(key, all_partitions, all_partitions) == default(
                key, all_partitions, all_partitions
            )


def test_each_key_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[bytes] = []
    real = partitioner_module.murmur2

    def counting(key: bytes) -> int:
        hashed.append(key)
        return int(real(key))

    monkeypatch.setattr(partitioner_module, "murmur2", counting)
    ours = KeyedPartitioner()
    for _ in range(3):
        ours(b"route-a", [0, 1, 2, 3], [0, 1, 2, 3])
        ours(b"route-b", [0, 1, 2, 3], [0, 1, 2, 3])
    assert hashed == [b"route-a", b"route-b"]


def test_the_memo_is_bounded() -> None:
    ours = KeyedPartitioner(max_keys=10)
    for n in range(25):
        ours(b"key-%d" % n, [0, 1], [0, 1])
        assert len(ours) <= 10


def test_a_record_without_a_bytes_key_goes_where_the_default_sends_it() -> None:
    ours = KeyedPartitioner()
    assert ours(None, [0, 1, 2], [2]) == 2  # the only available one, as the default
    assert ours(bytearray(b"k"), [0, 1, 2], [0, 1, 2]) == DefaultPartitioner()(
        bytearray(b"k"), [0, 1, 2], [0, 1, 2]
    )
    assert len(ours) == 0


async def test_every_producer_and_the_stream_s_use_it() -> None:
    from streams.faust_adapter.app import StreamApp
    from streams.settings import StreamSettings

    assert isinstance(producer_options()["partitioner"], KeyedPartitioner)
    # Async: Faust builds its producer on the running loop.
    app = StreamApp(StreamSettings.from_env({}), KafkaCluster("127.0.0.1:1"), partitions=1)
    assert isinstance(app._app.producer._settings_default()["partitioner"], KeyedPartitioner)
