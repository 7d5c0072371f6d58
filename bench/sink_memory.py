"""The sink's peak memory while it drains a backlog, by backlog size.

``python -m bench.sink_memory 15000 30000 60000``: for each size, a fresh embedded
broker, that many events in the events topic *before* the sink starts, then
``codex-analytics sink worker`` (a process) drains them into the recording receiver
(in this process, so its memory is not counted). Prints the sink's peak RSS (VmHWM)
and its drain rate; the peak should not depend on the size (docs/sink.md gives its
bound). ``--env NAME=VALUE`` passes a setting to the sink; ``--wrap`` runs it under
another command, e.g. ``--wrap "python -m memray run --native -o sink.bin -m
codex_analytics.cli.main"`` to see where its memory goes.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.devtools.receiver import Receiver

from .common import produce_records, spawn
from .sink import event_records, peak_rss_mb, sink_worker_env, write_secrets

#: Events per generated fact (the generator's mix through the reducer), to size input.
EVENTS_PER_FACT = 0.37
SINK = [sys.executable, "-m", "codex_analytics.cli.main"]


async def drain(
    events: int, tmp: Path, env: tuple[tuple[str, str], ...] = (), wrap: list[str] | None = None
) -> tuple[float, float]:
    """Drain ``events`` events through a sink process: (peak RSS MiB, events/s)."""
    values, keys, accounts = event_records(int(events / EVENTS_PER_FACT))
    values, keys = values[:events], keys[:events]
    secrets = write_secrets(tmp, accounts)
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        await produce_records(broker.bootstrap_servers, topic, values, keys)
        async with Receiver() as receiver:
            proc = spawn(
                [*(wrap or SINK), "sink", "worker"],
                sink_worker_env(broker.bootstrap_servers, topic, receiver.base_url, secrets, env),
                tmp / "sink.log",
            )
            peak = 0.0
            try:
                deadline = time.monotonic() + 600
                while receiver.unique_event_count < len(values):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the sink did not drain: {tmp / 'sink.log'}")
                    peak = max(peak, peak_rss_mb(proc.pid))
                    await asyncio.sleep(0.1)
                peak = max(peak, peak_rss_mb(proc.pid))
            finally:
                proc.terminate()
                await asyncio.to_thread(proc.wait, 60)
            stamps = [r.at for r in receiver.requests]
    return peak, len(values) / max(max(stamps) - min(stamps), 1e-3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sink_memory", description=__doc__)
    parser.add_argument("events", type=int, nargs="+")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--wrap", default="", help="the command to run the sink under")
    args = parser.parse_args(argv)
    env = tuple(tuple(item.split("=", 1)) for item in args.env)
    for events in args.events:
        with tempfile.TemporaryDirectory() as tmp:
            peak, rate = asyncio.run(drain(events, Path(tmp), env, shlex.split(args.wrap) or None))
        print(f"{events:>7,} events: sink peak RSS {peak:6.1f} MiB, {rate:8,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
