"""Fixtures for tests against a real broker: a fresh embedded broker per test module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.devtools.receiver import Receiver

from .sink_helpers import SinkRun
from .stream_helpers import StreamRun


@pytest.fixture(scope="module")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of an embedded broker private to this test module.

    Fresh per module because the broker's CPU cost grows with every record it
    holds (it deletes nothing). It never skips: no broker is a failure.
    """
    log_path = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=str(log_path)) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name(prefix)`` -> a topic / group name no other test uses."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex}"

    return make


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[str]:
    """A broker private to one test, for tests that move tens of thousands of records
    (the embedded broker slows down with what it holds)."""
    with EmbeddedBroker(log_path=str(tmp_path / "broker.log")) as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def stream_run(fresh_broker: str, tmp_path: Path, unique_name: Callable[[str], str]) -> StreamRun:
    return StreamRun(bootstrap=fresh_broker, prefix=unique_name("t"), log_dir=tmp_path)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A recording analytics endpoint on 127.0.0.1 (a real HTTP server) that refuses
    uploads the real endpoint would refuse (path, auth headers, events off contract)."""
    async with Receiver(validate=True) as server:  # uploads checked like the real endpoint
        yield server


@pytest.fixture
def new_sink_run(
    tmp_path: Path, unique_name: Callable[[str], str], receiver: Receiver
) -> Callable[[str], SinkRun]:
    """``new_sink_run(bootstrap)`` -> topics, group and credentials private to one test,
    posting to this test's receiver."""

    def make(bootstrap: str) -> SinkRun:
        return SinkRun(
            bootstrap=bootstrap,
            prefix=unique_name("sink"),
            tmp=tmp_path,
            base_url=receiver.base_url,
        )

    return make
