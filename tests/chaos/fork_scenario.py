"""A host that builds one analytics client and then forks workers, as gunicorn
``--preload`` (``--kind async``: a built, not yet started ``AnalyticsClient``, then
``os.fork()``) or Celery prefork (``--kind sync``: a running ``SyncAnalyticsClient``,
then multiprocessing's fork start method) do.

The parent queues ``--parent-facts`` facts before forking and sends them after; each of
``--children`` children tracks ``--child-facts`` facts of its own and closes its copy of
the client. One JSON document on stdout says what each process saw. Run in its own
process by tests/chaos/test_client_fork.py, so the test runner itself never forks.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import orjson

from producers import AnalyticsClient, ClientSettings, SyncAnalyticsClient
from producers.client.analytics_client import TrackCalls

#: A child's close() timeout (generous for a loaded machine: a healthy close takes
#: milliseconds), and the longest a child may take in all: a hung child is a failure,
#: reported as such, never a hung test.
CLOSE_TIMEOUT_S = 8.0
CHILD_DEADLINE_S = 25.0


def usage(label: str, i: int) -> dict[str, Any]:
    counts = ("input_tokens", "cached_input_tokens", "output_tokens")
    more = ("reasoning_output_tokens", "total_tokens")
    return {
        "turn_id": f"turn-{label}-{i}",
        "thread_id": f"thread-{label}",
        "token_usage": dict.fromkeys(counts + more, i),
    }


def track(client: TrackCalls, label: str, n: int) -> int:
    return sum(client.track_turn_token_usage(usage(label, i)) for i in range(n))


def report(client: TrackCalls, queued: int, closed: bool, close_s: float) -> dict[str, Any]:
    stats = client.stats
    return {
        "pid": os.getpid(),
        "instance_id": client.instance_id,
        "queued": queued,
        "closed": closed,
        "close_s": round(close_s, 3),
        "published": stats.published,
        "failed": stats.failed,
    }


# -- gunicorn --preload: a built AnalyticsClient, then os.fork() ---------------------------


async def async_child(client: AnalyticsClient, label: str, n: int) -> dict[str, Any]:
    await client.start()
    queued = track(client, label, n)
    started = time.monotonic()
    closed = await client.close(timeout=CLOSE_TIMEOUT_S)
    return report(client, queued, closed, time.monotonic() - started)


def run_async(settings: ClientSettings, args: argparse.Namespace) -> dict[str, Any]:
    client = AnalyticsClient(settings)
    parent_queued = track(client, "parent", args.parent_facts)  # buffered: not started yet
    children: list[tuple[int, int]] = []
    for c in range(args.children):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                result = asyncio.run(
                    asyncio.wait_for(
                        async_child(client, f"child{c}", args.child_facts), CHILD_DEADLINE_S
                    )
                )
            except BaseException as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, orjson.dumps(result))
            os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))

    async def parent() -> dict[str, Any]:
        await client.start()
        started = time.monotonic()
        closed = await client.close(timeout=10)
        return report(client, parent_queued, closed, time.monotonic() - started)

    parent_result = asyncio.run(parent())
    results = []
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        results.append(orjson.loads(data) if data else {"error": "no answer"})
    return {"parent": parent_result, "children": results}


# -- Celery prefork: a running SyncAnalyticsClient, then multiprocessing (fork) -----------


def sync_child(client: SyncAnalyticsClient, label: str, n: int, answer: Connection) -> None:
    queued = track(client, label, n)
    started = time.monotonic()
    try:
        closed = client.close(timeout=CLOSE_TIMEOUT_S)
    except BaseException as exc:
        answer.send_bytes(orjson.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    answer.send_bytes(orjson.dumps(report(client, queued, closed, time.monotonic() - started)))


def run_sync(settings: ClientSettings, args: argparse.Namespace) -> dict[str, Any]:
    client = SyncAnalyticsClient(settings)
    parent_queued = track(client, "parent", args.parent_facts)  # in the queue or in flight
    fork = multiprocessing.get_context("fork")
    children = []
    for c in range(args.children):
        ours, theirs = fork.Pipe(duplex=False)
        process = fork.Process(
            target=sync_child, args=(client, f"child{c}", args.child_facts, theirs)
        )
        process.start()
        children.append((process, ours))
    started = time.monotonic()
    closed = client.close(timeout=10)
    parent_result = report(client, parent_queued, closed, time.monotonic() - started)
    results = []
    for process, ours in children:
        if ours.poll(CHILD_DEADLINE_S):
            results.append(orjson.loads(ours.recv_bytes()))
        else:
            results.append({"error": f"no answer within {CHILD_DEADLINE_S} s"})
        process.join(timeout=1)
        if process.is_alive():
            process.kill()
    return {"parent": parent_result, "children": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("async", "sync"), required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--parent-facts", type=int, default=5)
    parser.add_argument("--child-facts", type=int, default=5)
    args = parser.parse_args()
    settings = ClientSettings(
        kafka=args.bootstrap, topic=args.topic, delivery_timeout_s=10, contract="2026-06"
    )
    run = run_async if args.kind == "async" else run_sync
    sys.stdout.write(orjson.dumps(run(settings, args)).decode() + "\n")


if __name__ == "__main__":
    main()
