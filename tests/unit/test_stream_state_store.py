"""The stream worker's state store adapter on Faust's real stores (memory and RocksDB),
without a broker: the app is built, never started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from streams.faust_adapter.store import StateStore
from streams.faust_adapter.transport import SCHEME


def table(kind: str, datadir: Path) -> Any:
    app = faust.App(
        "store-test",
        broker=f"{SCHEME}://localhost:1",
        store=f"{kind}://",
        datadir=str(datadir),
        web_enabled=False,
    )
    return app.Table("reducer-state", partitions=4, key_type=bytes, value_type=bytes)


@pytest.fixture(params=["memory", "rocksdb"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_put_get_delete(kind: str, tmp_path: Path) -> None:
    store = StateStore(table(kind, tmp_path), partitioned=kind == "rocksdb")
    store.put(b"a", b"1", 3, 17)
    store.put(b"b", b"2", 1, 5)
    assert store.get(b"a", 3) == b"1"
    assert store.get(b"missing", 3) is None
    store.delete(b"a", 3, 18)
    assert store.get(b"a", 3) is None
    assert [(key, value) for key, value, _ in store.items()] == [(b"b", b"2")]


async def test_rocksdb_keeps_each_state_in_its_partition(tmp_path: Path) -> None:
    faust_table = table("rocksdb", tmp_path)
    store = StateStore(faust_table, partitioned=True)
    store.put(b"a", b"1", 3, 17)
    store.put(b"b", b"2", 1, 5)
    assert store.get(b"a", 2) is None, "read from the named partition's DB only"
    assert sorted(store.items()) == [(b"a", b"1", 3), (b"b", b"2", 1)]
    # On a restart only the changelog past these offsets is read.
    assert faust_table.data.persisted_offset(TP(store.changelog, 3)) == 17
    store.delete(b"b", 1, 9)
    assert faust_table.data.persisted_offset(TP(store.changelog, 1)) == 9


async def test_memory_store_knows_partitions_of_recovered_states_only(tmp_path: Path) -> None:
    faust_table = table("memory", tmp_path)
    store = StateStore(faust_table, partitioned=False)
    store.put(b"live", b"1", 2, 1)
    faust_table.data.data[b"recovered"] = b"2"  # as changelog recovery fills it
    faust_table.data._key_partition[b"recovered"] = 3
    assert sorted(store.items()) == [(b"live", b"1", None), (b"recovered", b"2", 3)]
    store.delete(b"recovered", 3, 4)
    assert b"recovered" not in faust_table.data._key_partition


def test_the_changelog_is_the_tables(tmp_path: Path) -> None:
    faust_table = table("memory", tmp_path)
    store = StateStore(faust_table, partitioned=False)
    assert store.changelog == "store-test-reducer-state-changelog"
