"""Liveness and readiness: the vocabulary (runtime/health.py), the endpoints every
service serves (runtime/http.py) over real HTTP on 127.0.0.1, the threaded side door,
and the services' readiness rules (stream phases, the sink's capture recheck)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiokafka import TopicPartition

from codex_analytics.runtime.health import (
    CONNECTING,
    JOINING,
    READY,
    RECOVERING,
    STARTING,
    STOPPING,
    UNAVAILABLE,
    BrokerWatch,
    Heartbeat,
    Readiness,
    ReadinessBoard,
    not_ready,
)
from codex_analytics.runtime.http import (
    AnswerUnavailable,
    HealthEndpoints,
    ListenError,
    OwnerLoop,
    ServiceHttp,
    ThreadedServiceHttp,
)
from sinks.capture import CaptureDestination
from sinks.settings import SinkSettings
from sinks.worker import SinkWorker
from streams.faust_adapter.app import StreamApp


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def endpoints(
    readiness: Readiness, heartbeat: Heartbeat | None = None, metrics: Any = None
) -> HealthEndpoints:
    return HealthEndpoints(
        "svc",
        readiness=lambda: readiness,
        heartbeat=heartbeat or Heartbeat(),
        stall_after_s=30.0,
        metrics=metrics or (lambda: b"m 1\n"),
    )


# -- the vocabulary --------------------------------------------------------------------


def test_readiness_is_ready_only_when_ready_and_refuses_unknown_statuses() -> None:
    assert Readiness(READY).ready
    assert not not_ready(RECOVERING, "reading the changelog").ready
    assert not_ready(JOINING, "why", partitions=0).details == {"reason": "why", "partitions": 0}
    assert not_ready(STOPPING).details == {"reason": "a stop signal came"}
    with pytest.raises(ValueError, match="unknown readiness status 'ok'"):
        Readiness("ok")


def test_the_heartbeat_ages_until_stamped_again() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(clock)
    clock.now += 12.5
    assert heartbeat.age() == 12.5
    heartbeat.stamp()
    assert heartbeat.age() == 0.0


def test_the_board_reports_how_long_the_status_has_held() -> None:
    board = ReadinessBoard()
    assert board.read().status == "starting"
    board.post(not_ready(CONNECTING, "x"))
    board.post(not_ready(CONNECTING, "x", attempt=2))  # the same status: the clock keeps on
    read = board.read()
    assert read.status == CONNECTING
    assert read.details["attempt"] == 2
    assert read.details["status_for_s"] >= 0


async def test_the_broker_watch_keeps_no_failure() -> None:
    answers: list[Any] = [False, RuntimeError("boom"), True]

    async def probe() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    watch = BrokerWatch(probe, timeout_s=0.5)
    assert watch.reachable is None
    assert not await watch.check()
    assert watch.error == "the broker does not know the topic"
    assert not await watch.check()
    assert watch.error == "RuntimeError"
    assert await watch.check()
    assert watch.reachable
    assert watch.error is None


async def test_the_broker_watch_gives_a_silent_broker_its_deadline() -> None:
    async def silent() -> bool:
        await asyncio.sleep(10)
        return True

    watch = BrokerWatch(silent, timeout_s=0.1)
    started = time.monotonic()
    assert not await watch.check()
    assert time.monotonic() - started < 1.0
    assert watch.error == "no metadata answer within 0.1 s"


# -- the endpoints, over HTTP -----------------------------------------------------------


async def test_livez_depends_on_the_heartbeat_only() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(clock)
    door = ServiceHttp(endpoints(not_ready(CONNECTING, "broker down"), heartbeat))
    port = await door.start("127.0.0.1:0", setting="X_ADDR")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            live = await http.get("/livez")
            assert live.status_code == 200
            assert live.json() == {
                "service": "svc",
                "status": "alive",
                "ready": True,
                "heartbeat_age_s": 0.0,
                "stall_after_s": 30.0,
            }
            clock.now += 31
            stalled = await http.get("/livez")
            assert stalled.status_code == 503
            assert stalled.json()["status"] == "stalled"
            assert stalled.json()["heartbeat_age_s"] == 31.0
    finally:
        await door.stop()


async def test_readyz_and_its_deprecated_alias_answer_the_same_shape() -> None:
    door = ServiceHttp(endpoints(not_ready(RECOVERING, "reading", changelog_remaining=7)))
    port = await door.start("127.0.0.1:0", setting="X_ADDR")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            ready, old = await http.get("/readyz"), await http.get("/healthz")
    finally:
        await door.stop()
    expected = {
        "service": "svc",
        "status": "recovering",
        "ready": False,
        "reason": "reading",
        "changelog_remaining": 7,
    }
    assert ready.status_code == old.status_code == 503
    assert ready.json() == old.json() == expected
    assert "Deprecation" not in ready.headers
    assert old.headers["Deprecation"] == "true"
    assert old.headers["Link"] == '</readyz>; rel="successor-version"'


async def test_metrics_that_cannot_be_rendered_yet_are_a_503() -> None:
    def not_yet() -> bytes:
        raise AnswerUnavailable("starting: no metrics yet")

    door = ServiceHttp(endpoints(Readiness(READY), metrics=not_yet))
    port = await door.start("127.0.0.1:0", setting="X_ADDR")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answer = await http.get("/metrics")
    finally:
        await door.stop()
    assert answer.status_code == 503
    assert answer.text == "starting: no metrics yet\n"


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("bad", "no port number in 'bad'"),
        ("127.0.0.1:70000", "port out of range"),
        ("no-such-host.invalid:80", ""),
    ],
)
async def test_an_address_that_cannot_be_served_names_its_variable(addr: str, reason: str) -> None:
    door = ServiceHttp(endpoints(Readiness(READY)))
    with pytest.raises(ListenError, match=f"^cannot listen on X_ADDR={addr}: {reason}"):
        await door.start(addr, setting="X_ADDR")


def test_the_threaded_door_answers_while_the_service_thread_is_blocked() -> None:
    heartbeat = Heartbeat()
    door = ThreadedServiceHttp(endpoints(not_ready(JOINING, "joining"), heartbeat))
    port = door.start("127.0.0.1:0", setting="X_ADDR")
    answers: list[int] = []

    def probe() -> None:
        answers.append(httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code)
        answers.append(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code)

    try:
        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.3)  # the caller's thread is busy (importing Faust, say)
        prober.join(5)
    finally:
        door.stop()
    assert answers == [200, 503]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)


def test_the_threaded_door_refuses_a_port_in_use_in_the_caller() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        door = ThreadedServiceHttp(endpoints(Readiness(READY)))
        with pytest.raises(ListenError, match=f"X_ADDR=127.0.0.1:{port}: .*in use"):
            door.start(f"127.0.0.1:{port}", setting="X_ADDR")


def test_metrics_are_read_on_the_loop_that_owns_them_within_a_deadline() -> None:
    owner = OwnerLoop(timeout_s=0.3)
    on: list[str] = []

    def read() -> bytes:
        on.append(threading.current_thread().name)
        return b"x 1\n"

    with pytest.raises(AnswerUnavailable, match="not running"):
        asyncio.run(owner.call(read))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="own")
    thread.start()
    try:
        attached = threading.Event()
        loop.call_soon_threadsafe(lambda: (owner.attach(), attached.set()))
        assert attached.wait(5)
        assert asyncio.run(owner.call(read)) == b"x 1\n"
        assert on == ["own"]
        loop.call_soon_threadsafe(time.sleep, 0.6)  # the owner is blocked: give up, not wait
        started = time.monotonic()
        with pytest.raises(AnswerUnavailable, match=r"did not answer within 0\.3 s"):
            asyncio.run(owner.call(read))
        assert time.monotonic() - started < 0.55
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert on == ["own"]  # the read that was given up on never ran


# -- the services' readiness rules ------------------------------------------------------


def _phase(**app: Any) -> str:
    attributes = {
        "should_stop": False,
        "in_recovery": False,
        "started": True,
        "rebalancing": False,
        "rebalancing_count": 1,
    }
    stub = SimpleNamespace(_app=SimpleNamespace(**{**attributes, **app}))
    phase: str = StreamApp.phase.fget(stub)  # type: ignore[attr-defined]
    return phase


def test_the_stream_is_ready_after_its_first_rebalance_and_recovery() -> None:
    assert _phase(started=False, rebalancing_count=0) == JOINING
    assert _phase(rebalancing_count=0) == JOINING  # the group has not assigned yet
    assert _phase(rebalancing=True) == JOINING
    assert _phase(rebalancing=True, in_recovery=True) == RECOVERING  # Faust's rebalance spans it
    assert _phase() == READY  # an empty assignment too: more workers than partitions
    assert _phase(should_stop=True, in_recovery=True) == STOPPING


async def test_a_capture_file_that_could_not_be_opened_is_rechecked(tmp_path: Path) -> None:
    parent = tmp_path / "later"
    capture = CaptureDestination(str(parent / "events.jsonl"))
    assert capture.prepare() is not None
    assert capture.failing
    capture.recheck()
    assert capture.failing  # still no directory
    parent.mkdir()
    capture.recheck()
    assert not capture.failing
    assert (parent / "events.jsonl").exists()


async def test_a_failed_append_is_left_to_its_batch_not_to_the_recheck(tmp_path: Path) -> None:
    capture = CaptureDestination(str(tmp_path / "events.jsonl"))
    assert capture.prepare() is None
    capture.failing = True  # as a failed append leaves it (a full disk: open still works)
    capture.recheck()
    assert capture.failing
    await capture.deliver(b'{"events":[]}', {})
    assert not capture.failing


def test_handlers_are_plain_aiohttp_routes() -> None:
    app = web.Application()
    endpoints(Readiness(READY)).add_routes(app)
    paths = sorted(
        route.resource.canonical for route in app.router.routes() if route.method == "GET"
    )  # type: ignore[union-attr]
    assert paths == ["/healthz", "/livez", "/metrics", "/readyz"]


def _sink(tmp_path: Path, **env: str) -> SinkWorker:
    settings = SinkSettings.from_env(
        {"CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": str(tmp_path / "c.jsonl"), **env}
    )
    return SinkWorker(settings, "127.0.0.1:1")


async def test_the_sink_is_ready_once_consuming_its_assignment(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    assert sink.readiness().status == STARTING
    sink.phase = CONNECTING
    assert sink.readiness().status == CONNECTING
    sink.started = True
    assert sink.readiness().status == JOINING  # no assignment yet
    await sink.take_over([])  # an empty assignment: more sinks than partitions
    assert sink.readiness().ready
    await sink.hand_over([])  # a rebalance began
    assert sink.readiness().status == JOINING
    await sink.take_over([])
    sink._stop = asyncio.Event()
    sink._stop.set()
    assert sink.readiness().status == STOPPING


async def test_the_sink_is_not_ready_while_the_broker_is_silent_or_capture_fails(
    tmp_path: Path,
) -> None:
    sink = _sink(tmp_path)
    sink.started = True
    await sink.take_over([])

    async def silent() -> bool:
        return False

    sink.broker = BrokerWatch(silent)
    await sink.broker.check()
    readiness = sink.readiness()
    assert readiness.status == UNAVAILABLE
    assert readiness.details["reason"] == (
        "the broker does not answer: the broker does not know the topic"
    )
    assert readiness.details["broker_reachable"] is False
    sink.broker.reachable = True
    sink.destination.failing = True  # type: ignore[misc]
    readiness = sink.readiness()
    assert readiness.status == UNAVAILABLE
    assert readiness.details["reason"] == "the capture file cannot be written"


async def test_a_failing_endpoint_leaves_the_sink_ready(tmp_path: Path) -> None:
    sink = SinkWorker(
        SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://127.0.0.1:9/"}), "127.0.0.1:1"
    )
    sink.started = True
    await sink.take_over([TopicPartition("events", 0)])
    lane = sink.lanes.get(TopicPartition("events", 0))
    assert lane is not None
    lane.retrying = True  # its batch is being retried: the endpoint fails
    readiness = sink.readiness()
    assert readiness.ready
    assert readiness.details["retrying_partitions"] == 1
    assert readiness.details["mode"] == "http"
    await sink.lanes.cancel()
