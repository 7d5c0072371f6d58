"""The stream worker under broker faults and rebalances (issue #16: items 5, 11, 14 and
the stream's shutdown deadline), as processes against a real broker."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from codex_analytics.devtools.broker import free_port
from codex_analytics.runtime.shutdown import EXIT_SHUTDOWN_CUT_SHORT
from tests.integration.stream_helpers import (
    StreamRun,
    cli_process,
    collect,
    distinct_by_origin,
    expected_events,
    generated_facts,
    produce,
    run,
)

from .proxy import KafkaProxy, proxied_broker


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, KafkaProxy]]:
    with proxied_broker(tmp_path / "broker.log") as pair:
        yield pair


def stream_behind(
    bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str], **env: str
) -> StreamRun:
    return StreamRun(
        bootstrap=bootstrap,
        prefix=unique_name("t"),
        log_dir=tmp_path,
        partitions=2,
        extra_env=env,
    )


def healthz(port: int) -> dict[str, Any]:
    """The worker's ``/readyz`` body once it is ready ({} before)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return dict(orjson.loads(answer.read()))
    except OSError:
        return {}


def wait_for(
    proc: subprocess.Popen[bytes], what: str, done: Callable[[], bool], within_s: float
) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        assert proc.poll() is None, f"the worker exited with status {proc.returncode}"
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s"
        time.sleep(0.2)


@contextmanager
def running_worker(
    stream: StreamRun, name: str, facts: int = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker that has its partitions and has reduced ``facts`` facts."""
    port = free_port("127.0.0.1")
    stream.extra_env["ANALYTICS_STREAM_HEALTH_ADDR"] = f"127.0.0.1:{port}"
    with stream.worker(name) as proc:
        wait_for(proc, "assigned", lambda: healthz(port).get("partitions", 0) > 0, 60)
        run(produce(stream.bootstrap, stream.facts, generated_facts(facts, instances=5)))
        wait_for(proc, "facts reduced", lambda: healthz(port).get("records") == facts, 60)
        yield proc


def seconds_to_exit(proc: subprocess.Popen[bytes], within_s: float) -> float:
    started = time.monotonic()
    try:
        proc.wait(within_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still runs {within_s} s later")
    return time.monotonic() - started


# -- shutdown: every wait has a deadline --------------------------------------------------


@contextmanager
def stopping_while_the_broker_is_silent(
    proxied: tuple[str, KafkaProxy],
    tmp_path: Path,
    unique_name: Callable[[str], str],
    timeout_s: int,
) -> Iterator[tuple[StreamRun, subprocess.Popen[bytes]]]:
    """A worker with ``ANALYTICS_SHUTDOWN_TIMEOUT_S=timeout_s``, sent SIGTERM once its
    broker stopped answering (the final commit, the consumer's stop and the producer's
    flush all wait on it)."""
    bootstrap, proxy = proxied
    stream = stream_behind(
        bootstrap, tmp_path, unique_name, ANALYTICS_SHUTDOWN_TIMEOUT_S=str(timeout_s)
    )
    with running_worker(stream, "w1") as worker:
        proxy.pause()
        worker.send_signal(signal.SIGTERM)
        yield stream, worker


def test_sigterm_ends_a_worker_whose_broker_went_silent_within_its_timeout(
    proxied: tuple[str, KafkaProxy], tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    with stopping_while_the_broker_is_silent(proxied, tmp_path, unique_name, 3) as (stream, worker):
        took = seconds_to_exit(worker, 3 + 5)
        assert worker.returncode == EXIT_SHUTDOWN_CUT_SHORT
    assert "shutdown did not finish" in stream.log_text("w1"), stream.log_text("w1")[-3000:]
    assert took >= 2.5, f"the worker had its 3 s to finish, and took {took:.1f} s"
    print(f"SIGTERM with the broker silent: exited after {took:.1f} s (timeout 3 s)")


def test_a_second_sigterm_ends_the_worker_at_once(
    proxied: tuple[str, KafkaProxy], tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    with stopping_while_the_broker_is_silent(proxied, tmp_path, unique_name, 60) as (_, worker):
        time.sleep(1.0)
        assert worker.poll() is None, "the first SIGTERM waits for the shutdown"
        worker.send_signal(signal.SIGTERM)
        print(f"second SIGTERM: exited after {seconds_to_exit(worker, 2):.2f} s")
        assert worker.returncode == 128 + signal.SIGTERM


# -- item 5: an offset hole open when its partition is revoked ---------------------------


def test_scale_out_while_an_offset_hole_is_open_does_not_crash_the_worker(
    stream_run: StreamRun,
) -> None:
    """Worker 1 holds a hole open on every partition (it never sees offset 1 while its
    first assignment lasts) and asks for a seek back every 2 s; a second worker joins,
    and the partitions move. The records it holds back must not hold the rebalance up
    (before: it waited for their acks for ever), and seeking a partition it no longer
    owns must not end it (before: exit 70)."""
    stream_run.partitions = 4
    facts = generated_facts(200, instances=8, seed=5)
    expected = expected_events(facts)
    with seam_worker(stream_run, "w1", "tests.chaos.stream_with_hole") as first:
        run(produce(stream_run.bootstrap, stream_run.facts, facts))
        wait_for(first, "a seek back", lambda: "re-reading" in stream_run.log_text("w1"), 60)
        with stream_run.worker("w2") as second:
            events = distinct_events(stream_run, expected, within_s=90)
            assert first.poll() is None, stream_run.log_text("w1")[-3000:]
            assert second.poll() is None, stream_run.log_text("w2")[-3000:]
    assert events == expected, (
        f"{len(events)} distinct events vs {len(expected)} expected; the workers' last lines:\n"
        + "\n".join(log_tail(stream_run, name) for name in ("w1", "w2"))
    )


def test_records_fetched_between_the_seek_and_the_flow_resume_are_not_lost(
    stream_run: StreamRun,
) -> None:
    """Faust ends a recovery by seeking the stream partitions to their committed offsets
    and then resuming its flow control, which clears the stream buffers; after a
    rebalance the consumer's own flow was already running, so records fetched and
    delivered in between were cleared while the fetch position had passed them: never
    fetched again, and no later record to reveal the hole (before: the workers idled
    with the facts unread, the scale-out test's stall under load). Here that window
    lasts 1 s (a test seam), and the facts arrive while the workers rebalance."""
    stream_run.partitions = 2
    facts = generated_facts(60, instances=6, seed=7)
    expected = expected_events(facts)
    seam = "tests.chaos.stream_slow_resume"
    with seam_worker(stream_run, "w1", seam) as first:
        wait_for(first, "ready", lambda: "Worker ready" in stream_run.log_text("w1"), 60)
        with seam_worker(stream_run, "w2", seam) as second:
            wait_for(first, "a rebalance", lambda: "frozenset" in revocations(stream_run), 60)
            run(produce(stream_run.bootstrap, stream_run.facts, facts))
            events = distinct_events(stream_run, expected, within_s=30)
            assert first.poll() is None, stream_run.log_text("w1")[-3000:]
            assert second.poll() is None, stream_run.log_text("w2")[-3000:]
    assert events == expected, (
        f"{len(events)} distinct events vs {len(expected)} expected; the workers' last lines:\n"
        + "\n".join(log_tail(stream_run, name) for name in ("w1", "w2"))
    )


def test_records_lost_at_the_end_of_a_partition_are_read_again(stream_run: StreamRun) -> None:
    """Whatever loses records between the fetch and the worker (above: Faust clearing
    its buffers), records lost at the end of a partition leave no later record to show
    the hole, and the worker idled with a lag (before: for ever). The seam loses the
    first delivery of each partition's last record; the worker must notice that the
    fetch position passed what arrived, and read it again."""
    stream_run.partitions = 2
    facts = generated_facts(40, instances=4, seed=9)
    expected = expected_events(facts)
    run(produce(stream_run.bootstrap, stream_run.facts, facts))
    with seam_worker(stream_run, "w1", "tests.chaos.stream_losing_tail") as worker:
        events = distinct_events(stream_run, expected, within_s=30)
        assert worker.poll() is None, stream_run.log_text("w1")[-3000:]
    assert events == expected, (
        f"{len(events)} distinct events vs {len(expected)} expected; the worker's last lines:\n"
        + log_tail(stream_run, "w1")
    )
    assert "stalled on" in stream_run.log_text("w1")


def revocations(stream: StreamRun) -> str:
    """Worker 1's "Revoking previously assigned partitions ..." lines."""
    lines = stream.log_text("w1").splitlines()
    return "\n".join(line for line in lines if "Revoking previously assigned" in line)


def log_tail(stream: StreamRun, name: str, lines: int = 40) -> str:
    """What a worker logged last, without the heartbeat chatter of a rebalance."""
    kept = [line for line in stream.log_text(name).splitlines() if "Heartbeat" not in line]
    return f"--- {name}\n" + "\n".join(line[:300] for line in kept[-lines:])


def distinct_events(stream: StreamRun, expected: list[bytes], within_s: float) -> list[bytes]:
    """The distinct events on the events topic once they are the ``expected`` ones (a
    rebalance repeats some: counting records is not enough), or after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        out = run(collect(stream.bootstrap, stream.events, want=10**6, within=2, settle=0))
        events, _ = distinct_by_origin(out)
        if events == expected or time.monotonic() >= deadline:
            return events


def seam_worker(stream: StreamRun, name: str, module: str) -> Any:
    """A stream worker started through a test-only seam: ``python -m MODULE stream worker``."""
    return cli_process(
        ["stream", "worker"], stream.env(), stream.log_dir / f"{name}.log", module=module
    )


# -- item 11: a slow committed-offset lookup ---------------------------------------------

#: States swept 0.36 s after their last write (the shortest horizons allowed).
FAST_SWEEP = {
    "ANALYTICS_STATE_HORIZON_HOURS": "0.0001",
    "ANALYTICS_DEDUPE_HORIZON_HOURS": "0.0001",
    "ANALYTICS_STATE_RETENTION_HOURS": "0.0001",
    "ANALYTICS_STREAM_SWEEP_INTERVAL_S": "0.5",
}


def test_a_slow_committed_offset_lookup_does_not_restart_from_the_start(
    stream_run: StreamRun,
) -> None:
    """A worker restarts; its first records arrive before Faust's copy of the committed
    offsets, and the broker takes 6 s to answer the worker's own lookup (which gave up
    after 5 s and read from the start). It must go on from the committed offsets:
    nothing reduced again, no event of a swept instance re-emitted."""
    stream = stream_run
    stream.partitions = 2
    stream.extra_env.update(FAST_SWEEP)
    bootstrap = stream.bootstrap
    first_port = free_port("127.0.0.1")
    stream.extra_env["ANALYTICS_STREAM_HEALTH_ADDR"] = f"127.0.0.1:{first_port}"
    facts = generated_facts(60, instances=6, seed=3)
    with stream.worker("w1") as first:
        wait_for(first, "assigned", lambda: healthz(first_port).get("partitions", 0) > 0, 60)
        run(produce(bootstrap, stream.facts, facts))
        wait_for(first, "facts reduced", lambda: healthz(first_port).get("records") == 60, 60)
        wait_for(first, "states swept", lambda: "idle sweep: deleted" in stream.log_text("w1"), 30)
        before = run(collect(bootstrap, stream.events, want=10**6, within=3, settle=0))
        assert before.raw, "the first worker emitted events"
    second_port = free_port("127.0.0.1")
    stream.extra_env["ANALYTICS_STREAM_HEALTH_ADDR"] = f"127.0.0.1:{second_port}"
    with seam_worker(stream, "w2", "tests.chaos.stream_with_slow_lookup") as second:
        wait_for(second, "assigned", lambda: healthz(second_port).get("partitions", 0) > 0, 60)
        run(produce(bootstrap, stream.facts, generated_facts(1, instances=1, seed=77)))
        wait_for(second, "the new fact", lambda: healthz(second_port).get("records", 0) >= 1, 40)
        time.sleep(2)  # a restart from the start would go on re-reducing
        reduced = healthz(second_port).get("records")
    assert reduced == 1, f"the second worker reduced {reduced} records: it re-read old ones"
    after = run(collect(bootstrap, stream.events, want=10**6, within=3, settle=0))
    old = set(before.raw)
    assert sum(raw in old for raw in after.raw) == len(before.raw), "old events re-emitted"
