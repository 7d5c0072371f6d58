"""The whole pipeline for the system scenarios: stream and sink workers as
``codex-analytics`` processes on one broker, posting to a recording receiver; the
verdict on what the receiver got; the resident memory of a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from codex_analytics.devtools.receiver import Receiver
from codex_analytics.runtime.kafka import ensure_topics
from tests.integration.sink_helpers import SinkRun
from tests.integration.stream_helpers import StreamRun, collect, distinct_by_origin

#: Where a failed scenario's logs are kept for the report (the tmp dirs are pruned).
KEEP_LOGS = Path(os.environ.get("CHAOS_KEEP_DIR", "/tmp/chaos-logs"))
#: The generator's accounts (its default count): ``acct-000`` .. ``acct-009``. Each
#: needs a token, or the sink's auth gate skips its events (counted, never sent).
ACCOUNTS = 10


@dataclass
class Pipeline:
    """Stream workers -> events topic -> sink workers -> ``receiver``, topics and groups
    private to one test. Workers are started by name; each logs to ``tmp/<name>.log``."""

    stream: StreamRun
    sink: SinkRun

    @classmethod
    def on(cls, bootstrap: str, tmp: Path, receiver: Receiver, partitions: int = 8) -> Pipeline:
        prefix = f"chaos-{uuid.uuid4().hex[:12]}"
        stream = StreamRun(bootstrap=bootstrap, prefix=prefix, log_dir=tmp, partitions=partitions)
        sink = SinkRun(
            bootstrap=bootstrap,
            prefix=prefix,
            tmp=tmp,
            base_url=receiver.base_url,
            partitions=partitions,
        )
        for account in range(ACCOUNTS):
            sink.add_account(f"acct-{account:03d}")
        return cls(stream, sink)

    async def create_topics(self) -> None:
        """All four topics with ``partitions`` each, before any worker or producer
        (a producer's first send would otherwise create the facts topic with the
        broker's default count)."""
        topics = (self.stream.facts, self.stream.dlq, self.sink.events, self.sink.dlq)
        await ensure_topics(self.stream.bootstrap, dict.fromkeys(topics, self.stream.partitions))

    def stream_worker(
        self, name: str
    ) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        # A data directory of its own, in the test's tmp (the default is the repo's).
        data_dir = self.stream.log_dir / f"{name}-data"
        self.stream.extra_env["ANALYTICS_STREAM_DATA_DIR"] = str(data_dir)
        return self.stream.worker(name)

    def sink_worker(self, name: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
        return self.sink.process(name)

    def logs(self) -> str:
        """The tail of every worker log, for an assertion message."""
        parts = []
        for path in sorted(self.stream.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    async def assert_delivered(
        self, receiver: Receiver, verdict: Delivered, expected: list[bytes], scenario: str
    ) -> int:
        """Nothing lost or made up at the receiver (else the logs are kept), a re-sent
        batch is an exact repeat, and the events topic holds the expected events, any
        repeat byte-identical to its first copy. Returns the events topic's repeats."""
        if verdict.missing or verdict.unexpected:
            pytest.fail(f"{verdict.summary()}; logs in {self.keep_logs(scenario)}")
        assert_one_body_per_key(receiver)
        records = await collect(
            self.stream.bootstrap, self.stream.events, want=len(expected), within=30, settle=1
        )
        events, repeats = distinct_by_origin(records)  # asserts repeats are exact
        assert events == expected
        return repeats

    def keep_logs(self, scenario: str) -> Path:
        """Copy every log of the run to ``KEEP_LOGS/<scenario>-<prefix>``."""
        target = KEEP_LOGS / f"{scenario}-{self.stream.prefix}"
        target.mkdir(parents=True, exist_ok=True)
        for path in self.stream.log_dir.glob("*.log"):
            shutil.copy(path, target / path.name)
        return target


@dataclass(frozen=True)
class Delivered:
    """What the receiver holds, against what the offline reducer says is due."""

    #: Expected events that never arrived (in a 2xx answer).
    missing: Counter[bytes]
    #: Arrivals beyond the expected count: repeats under another ``Idempotency-Key``.
    repeated: Counter[bytes]
    #: Arrivals the reducer never made.
    unexpected: Counter[bytes]
    requests: int
    #: Requests whose ``Idempotency-Key`` was seen before (a batch sent again).
    resent: int

    @classmethod
    def of(cls, receiver: Receiver, expected: list[bytes]) -> Delivered:
        want = Counter(expected)
        got = Counter(orjson.dumps(e) for e in receiver.accepted_events(unique=True))
        keys = Counter(r.idempotency_key for r in receiver.requests)
        extra = got - want
        return cls(
            missing=want - got,
            repeated=Counter({event: n for event, n in extra.items() if event in want}),
            unexpected=Counter({event: n for event, n in extra.items() if event not in want}),
            requests=len(receiver.requests),
            resent=sum(n - 1 for n in keys.values()),
        )

    def summary(self) -> str:
        return (
            f"{sum(self.missing.values())} missing, {sum(self.repeated.values())} repeated "
            f"under another key, {sum(self.unexpected.values())} unexpected, "
            f"{self.requests} requests, {self.resent} re-sent batches"
        )


async def wait_delivered(receiver: Receiver, expected: list[bytes], within: float) -> Delivered:
    """Wait (at most ``within`` seconds) until every expected event arrived."""
    deadline = time.monotonic() + within
    while True:
        await receiver.wait_for_events(len(expected), within=max(0.0, deadline - time.monotonic()))
        verdict = Delivered.of(receiver, expected)
        if not verdict.missing or time.monotonic() >= deadline:
            return verdict
        await asyncio.sleep(0.5)


def assert_one_body_per_key(receiver: Receiver) -> None:
    """A re-sent batch is an exact repeat: every ``Idempotency-Key`` names one body."""
    bodies: dict[str | None, bytes] = {}
    for request in receiver.requests:
        first = bodies.setdefault(request.idempotency_key, request.body)
        assert first == request.body, f"key {request.idempotency_key} named two bodies"


async def stop_all(*procs: subprocess.Popen[bytes], within: float = 30.0) -> dict[int, int]:
    """SIGTERM each process and wait for them off the event loop (the receiver lives on
    it and must keep answering while they flush); returns ``{pid: exit status}``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = {}
    for proc in procs:
        codes[proc.pid] = await asyncio.to_thread(proc.wait, within)
    return codes


@contextlib.asynccontextmanager
async def sampling_rss(pid: int, every_s: float = 0.25) -> AsyncIterator[list[float]]:
    """Samples of ``pid``'s RSS (MiB), taken in the background while the block runs."""
    samples: list[float] = []

    async def sample() -> None:
        with contextlib.suppress(OSError):  # the process is gone
            while True:
                samples.append(rss_mb(pid))
                await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
