"""The batch commit protocol (streams.commit) against a fake producer and store: the
order of its writes, and the exit when a write is not acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams import commit as commit_module
from streams.commit import MARKER_KEY, BatchCommit, Output, StateChange

CHANGELOG = "app-reducer-state-changelog"


@dataclass(frozen=True)
class Ack:
    partition: int
    offset: int


@dataclass
class Broker:
    """Records what happens, in order: sends, acknowledgements, store writes, acks."""

    log: list[tuple[Any, ...]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    fail_topic: str | None = None

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Ack]:
        self.log.append(("send", topic, key, value, partition, headers))
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        if topic == self.fail_topic:
            future.set_exception(RuntimeError("not acknowledged"))
            return future
        where = (topic, partition or 0)
        offset = self.offsets[where] = self.offsets.get(where, -1) + 1
        future.set_result(Ack(partition or 0, offset))
        return future

    def put(self, key: bytes, value: bytes, partition: int, offset: int) -> None:
        self.log.append(("put", key, value, partition, offset))

    def delete(self, key: bytes, partition: int, offset: int) -> None:
        self.log.append(("delete", key, partition, offset))

    async def ack(self, records: list[str]) -> None:
        self.log.append(("ack", records))


def kinds(log: list[tuple[Any, ...]]) -> list[str]:
    return [f"{entry[0]} {entry[1]}" if entry[0] == "send" else entry[0] for entry in log]


async def test_outputs_then_states_then_markers_then_acks_in_order() -> None:
    broker = Broker()
    commit = BatchCommit(broker.send, broker, CHANGELOG)
    await commit.commit(
        [Output("events", b"k", b"e1"), Output("dlq", None, b"bad", [("error.reason", b"x")])],
        [StateChange(b"i1", b"s1", 2), StateChange(b"i2", b"s2", 5), StateChange(b"i3", b"s3", 2)],
        ["event 1", "event 2"],
        broker.ack,
    )
    assert kinds(broker.log) == [
        "send events",
        "send dlq",
        *["send " + CHANGELOG] * 3,
        "put",
        "put",
        "put",
        *["send " + CHANGELOG] * 2,  # one marker per changelog partition written
        "ack",  # the batch's records at once, last
    ]
    assert broker.log[1][5] == [("error.reason", b"x")]
    assert [entry[1:] for entry in broker.log if entry[0] == "put"] == [
        (b"i1", b"s1", 2, 0),
        (b"i2", b"s2", 5, 0),
        (b"i3", b"s3", 2, 1),
    ]
    markers = [entry for entry in broker.log if entry[0] == "send" and entry[2] == MARKER_KEY]
    assert sorted(entry[4] for entry in markers) == [2, 5]
    assert [entry[1] for entry in broker.log if entry[0] == "ack"] == [["event 1", "event 2"]]


async def test_a_deleted_state_is_a_tombstone_then_a_store_delete() -> None:
    broker = Broker()
    await BatchCommit(broker.send, broker, CHANGELOG).write_states([StateChange(b"i1", None, 3)])
    assert broker.log[0] == ("send", CHANGELOG, b"i1", None, 3, None)
    assert broker.log[1] == ("delete", b"i1", 3, 0)
    assert broker.log[2][2] == MARKER_KEY


async def test_nothing_to_write_sends_nothing() -> None:
    broker = Broker()
    await BatchCommit(broker.send, broker, CHANGELOG).commit([], [], ["e"], broker.ack)
    assert broker.log == [("ack", ["e"])]


async def test_a_batch_without_records_acks_nothing() -> None:
    broker = Broker()
    await BatchCommit(broker.send, broker, CHANGELOG).commit([], [], [], broker.ack)
    assert broker.log == []


class Exited(Exception):
    pass


@pytest.mark.parametrize("failing", ["events", CHANGELOG])
async def test_a_write_not_acknowledged_ends_the_process_before_any_ack(
    failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exit_(status: int) -> None:
        raise Exited(status)

    monkeypatch.setattr(commit_module.os, "_exit", exit_)
    monkeypatch.setattr(commit_module.logging, "shutdown", lambda: None)  # pytest's handlers
    broker = Broker(fail_topic=failing)
    with pytest.raises(Exited) as exited:
        await BatchCommit(broker.send, broker, CHANGELOG).commit(
            [Output("events", b"k", b"e1")], [StateChange(b"i1", b"s1", 2)], ["e"], broker.ack
        )
    assert exited.value.args == (commit_module.EXIT_DELIVERY_FAILED,)
    assert not [entry for entry in broker.log if entry[0] in ("put", "ack")]
