"""The idle sweep's glue (streams.idle_sweep) with a fake store, assignment and commit:
when it runs, what it writes, and when it gives up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams import idle_sweep
from streams.commit import BatchCommit, StateChange
from streams.faust_adapter.store import StateStore
from streams.idle_sweep import IdleSweep
from streams.metrics import StreamCounts
from streams.sweep import stamp, state_of
from tests.unit.test_stream_state_store import table

HOUR_MS = 3_600_000


@dataclass
class Store:
    states: dict[bytes, tuple[bytes, int | None]] = field(default_factory=dict)

    def get(self, key: bytes, partition: int) -> bytes | None:
        found = self.states.get(key)
        return found[0] if found else None

    def items(self) -> Iterator[tuple[bytes, bytes, int | None]]:
        for key, (value, partition) in list(self.states.items()):
            yield key, value, partition


@dataclass
class Assignment:
    generation: int = 1
    rebalancing: bool = False


class Commit(BatchCommit):
    def __init__(self) -> None:
        self.written: list[list[StateChange]] = []

    async def write_states(self, states: Any) -> None:
        self.written.append(list(states))


def sweep_of(
    store: Store,
    assignment: Assignment,
    commit: Commit,
    forgotten: list[str] | None = None,
    counts: StreamCounts | None = None,
) -> IdleSweep:
    sweep = IdleSweep(
        interval_s=60,
        retention_ms=HOUR_MS,
        store=store,
        commit=commit,
        assignment=assignment,
        caught_up=lambda: {0, 1},
        forget=(forgotten if forgotten is not None else []).append,
        counts=counts if counts is not None else StreamCounts(),
    )
    sweep._next_at = time.monotonic()  # due now
    return sweep


async def test_deletes_idle_states_of_caught_up_partitions_and_stamps_old_ones() -> None:
    now_ms = int(time.time() * 1000)
    store = Store(
        {
            b"old": (stamp(b"{}", now_ms - 2 * HOUR_MS, 0), 0),
            b"fresh": (stamp(b"{}", now_ms, 1), 1),
            b"lagging": (stamp(b"{}", now_ms - 2 * HOUR_MS, 7), 7),
            b"unstamped": (b'{"v":1}', 1),
        }
    )
    commit, forgotten, counts = Commit(), [], StreamCounts()
    sweep = sweep_of(store, Assignment(), commit, forgotten, counts)
    assert sweep.due_in(time.monotonic()) <= 0
    await sweep.step()
    deleted, stamped = commit.written
    assert deleted == [StateChange(b"old", None, 0)]
    assert forgotten == ["old"]
    ((key, value, partition),) = [(s.key, s.value, s.partition) for s in stamped]
    assert (key, partition) == (b"unstamped", 1)
    assert value is not None
    assert value[:1] == b"\x01"
    assert state_of(value) == b'{"v":1}'
    assert counts.sweeps == 1
    assert counts.swept_states == 1
    assert sweep.due_in(time.monotonic()) > 50, "the next one in an interval"


async def test_a_big_store_is_swept_in_slices(monkeypatch: Any) -> None:
    monkeypatch.setattr(idle_sweep, "SWEEP_SLICE", 2)
    store = Store({f"k{n}".encode(): (stamp(b"{}", 0, 0), 0) for n in range(5)})
    commit, counts = Commit(), StreamCounts()
    sweep = sweep_of(store, Assignment(), commit, counts=counts)
    for _ in range(2):
        await sweep.step()
        assert sweep.due_in(time.monotonic()) == 0, "in progress: the next slice at once"
    await sweep.step()
    assert [len(states) for states in commit.written] == [2, 2, 1]
    assert counts.sweeps == 1


async def test_a_new_assignment_abandons_the_sweep(monkeypatch: Any) -> None:
    monkeypatch.setattr(idle_sweep, "SWEEP_SLICE", 1)
    store = Store({b"a": (stamp(b"{}", 0, 0), 0), b"b": (stamp(b"{}", 0, 0), 0)})
    assignment, commit, counts = Assignment(), Commit(), StreamCounts()
    sweep = sweep_of(store, assignment, commit, counts=counts)
    await sweep.step()
    assignment.generation = 2
    await sweep.step()
    assert len(commit.written) == 1
    assert counts.sweeps == 0
    assert sweep.due_in(time.monotonic()) > 50


async def test_no_sweep_starts_while_rebalancing() -> None:
    store = Store({b"a": (stamp(b"{}", 0, 0), 0)})
    commit = Commit()
    sweep = sweep_of(store, Assignment(rebalancing=True), commit)
    await sweep.step()
    assert commit.written == []
    assert 0 < sweep.due_in(time.monotonic()) <= 1.0, "tried again in a second"


async def test_a_state_rewritten_during_a_sweep_is_not_deleted_on_its_stale_stamp(
    monkeypatch: Any, tmp_path: Path
) -> None:
    """RocksDB iterators read a snapshot: a sweep walking the store in slices sees a state
    as it was when the sweep started, even if a batch between two slices rewrote it. The
    deletion must go by the live state's stamp."""
    monkeypatch.setattr(idle_sweep, "SWEEP_SLICE", 1)
    store = StateStore(table("rocksdb", tmp_path), partitioned=True)
    now_ms = int(time.time() * 1000)
    store.put(b"a", stamp(b"{}", now_ms - 2 * HOUR_MS, 0), 0, 1)
    store.put(b"b", stamp(b"{}", now_ms - 2 * HOUR_MS, 0), 0, 2)
    commit = Commit()
    sweep = sweep_of(Store(), Assignment(), commit)
    sweep._store = store
    await sweep.step()  # the first slice: "a", idle
    assert commit.written == [[StateChange(b"a", None, 0)]]
    store.put(b"b", stamp(b"{}", now_ms, 0), 0, 3)  # a batch between two slices writes "b"
    await sweep.step()
    assert commit.written == [[StateChange(b"a", None, 0)]], "the live 'b' is fresh: kept"


async def test_a_state_stamped_since_the_snapshot_is_not_stamped_again(tmp_path: Path) -> None:
    store = StateStore(table("rocksdb", tmp_path), partitioned=True)
    store.put(b"old", stamp(b'{"v":2}', int(time.time() * 1000), 1), 1, 2)
    commit = Commit()
    sweep = sweep_of(Store(), Assignment(), commit)
    # The sweep's walk still shows "old" as it was before a batch stamped it.
    sweep._store = SnapshotThenLive(store, [(b"old", b'{"v":1}', 1)])
    await sweep.step()
    assert commit.written == [], "already stamped by the batch: nothing to do"


@dataclass
class SnapshotThenLive:
    """A store whose walk shows what it held before the test's writes."""

    live: StateStore
    walk: list[tuple[bytes, bytes, int | None]]

    def get(self, key: bytes, partition: int) -> bytes | None:
        return self.live.get(key, partition)

    def items(self) -> Iterator[tuple[bytes, bytes, int | None]]:
        return iter(self.walk)
