"""Where the stream worker's time goes: a py-spy profile of one worker process.

The stream bench's workload (the generator's mix, one envelope per record, 8
partitions, pre-produced on a fresh embedded broker) goes through one
``codex-analytics stream worker`` started under ``py-spy record`` (all threads, 250 Hz;
the loop's waits in ``select``, which py-spy counts as active, are left out). Every sample is charged to the innermost frame that is not
the standard library, so an ``asyncio`` task created by Faust counts as Faust's; samples
with no such frame are the event loop's own. Start-up (imports) is left out. py-spy
slows the process it samples, so only shares are reported, never rates.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

from .common import ROOT, produce_records, stream_worker_env
from .stats import Figure
from .stream import _span

RATE_HZ = 250
_STDLIB = sysconfig.get_paths()["stdlib"]
#: (category, path fragments), first match wins; checked innermost frame first.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "decode, dedupe, reduce, encode (pure core)",
        ("streams/processor", "streams/reducer/", "codex_analytics/contract/"),
    ),
    ("worker glue (batch loop, offsets, writes)", ("streams/",)),
    ("Faust + mode (fetcher, conductor, streams, acks)", ("faust/", "mode/")),
    ("aiokafka (fetch, produce, protocol)", ("aiokafka/", "kafka/")),
)
EVENT_LOOP = "asyncio event loop (select, callbacks)"
OTHER = "other libraries"

#: What the profile changed: kept next to the code that renders it into the doc.
FINDINGS = """\
What the profile changed (1 worker, 1 fact/record, 40k facts, same broker):

- **Faust's per-record delivery**: ``wait_first(callback(message), suspend_flow.wait())``
  made four tasks and an ``asyncio.wait`` per record, 14.6% of all samples. The worker
  now runs the delivery inline and falls back to Faust's race only when it blocks
  (``Consumer.wait_first`` in ``streams/faust_adapter/transport.py``). Worker CPU for the run went from 6.0 s to 4.1 s.
- **Faust's progress spinner** set the root logger to DEBUG even off a terminal, so
  every aiokafka ``send`` built a log record (7% of samples). The worker has no spinner.
- **Batches took turns with delivery**: ``noack_take`` stops filling while a batch is
  processed, then waits up to its ``within`` for the next one. A hand-off buffer
  (``streams/handoff.py``) keeps the stream filling while a batch is processed and its
  writes are acknowledged; the batch loop takes what has arrived as soon as it is free.
- **One-second stalls**: with the stream buffers full, Faust's fetcher asked only the
  idle partitions for records and waited its full 1 s for them, or slept 1 s. A trace of
  the batch loop showed ~0.9 s gaps every ~1.5 s (a third of the run, and the latency
  spikes of the end-to-end bench). It now looks again every 10 ms while partitions are
  held back. Together with the hand-off: 7.3k -> 11.9k facts/s in that A/B run.
- **State bytes**: orjson >= 3.12 results keep a 4 KiB buffer each; states kept in the
  store cost 4.2 KB instead of ~1 KB (found by the scaling bench). Kept bytes are now
  copied exact-size (``dumps_kept``).

- **Faust's per-record path** (issue #19): every record still went through Faust's
  conductor callback, its stream's queue and iteration, an event object and a per-event
  ack. Before (2026-12-07, same 40k facts): 1,527 samples, Faust + mode 40.7%, pure core
  27.2%, aiokafka 21.8%, glue 7.3%. The consumer now hands each partition's fetched
  records to the worker as one list (``BatchRoute`` in
  ``streams/faust_adapter/transport.py``; the worker's ``deliver`` and
  ``streams/intake.py``), acks them in bulk (``Consumer.ack_offsets``, Faust's own ack
  bookkeeping, so its commit is unchanged), and Faust's revocation and stop wait for the
  records handed over (``Consumer.wait_empty``). After: 508 samples (a third), Faust +
  mode 9.6% (its fetcher and commit), pure core 53.9%, aiokafka 22.6%, glue 7.9%.
  Bought, in two A/B pairs of ``python -m bench stream`` (40k facts, old and new on the
  same broker): 1 worker, 1 fact/record, 0.21 and 0.20 of the ceiling -> 0.49 and 0.44
  (8.5k and 10.0k -> 25.0k and 24.1k facts/s); packs of <= 32 facts, 1 worker, 0.26 and
  0.24 -> 0.32 and 0.28 (the pure core's share, not Faust's).
- **The source-block cache** compared a fact's ``source`` block with the cached one by a
  recursive Python walk (12 calls a fact, the costliest step of decoding one); it now
  compares with ``==`` and checks only the types of the numeric leaves: ~3 µs less per
  fact.

What remains is the pure core (decoding a fact's JSON and payload, the reducer, the
state's bytes: about 14 µs a fact on one core, ``python -m bench reducer``) and
aiokafka's protocol work (a future per produced record, record unpacking on the
consumer's thread). Packing facts (``ANALYTICS_FACTS_PER_RECORD`` on the client) divides
the per-record part by the pack size, not the pure core.
"""


@dataclass(frozen=True, slots=True)
class ProfileBenchConfig:
    facts: int = 40_000


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    #: Samples of the main thread waiting in ``select`` (py-spy counts them as active).
    waiting: int
    shares: dict[str, int]
    top: list[tuple[str, int]]


_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*):\d+\)$")
WAITING = "EpollSelector.select"


def _category(path: str) -> str | None:
    """None for the standard library (py-spy names files by module path)."""
    top = path.split("/")[0].removesuffix(".py")
    if path.startswith(("<", _STDLIB)) or top in sys.stdlib_module_names:
        return None
    for name, fragments in CATEGORIES:
        if any(fragment in path for fragment in fragments):
            return name
    return OTHER


def summarise(raw: str, top: int = 12) -> Profile:
    """Shares per category and the functions with the most self samples, from py-spy's
    ``raw`` (collapsed stacks) output; start-up (import) samples are dropped."""
    shares: collections.Counter[str] = collections.Counter()
    selfs: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any("_find_and_load" in frame for frame in frames):
            continue
        if frames[-1].startswith(WAITING):  # the loop waiting for I/O: not CPU
            waiting += count
            continue
        total += count
        category = EVENT_LOOP
        for frame in reversed(frames):
            match = _FRAME.match(frame)
            found = _category(match.group("path")) if match else None
            if found is not None:
                category = found
                break
        shares[category] += count
        leaf = _FRAME.match(frames[-1])
        if leaf:
            path = leaf.group("path")
            short = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            selfs[f"{leaf.group('func')} ({short})"] += count
    return Profile(total, waiting, dict(shares), selfs.most_common(top))


def _record(config: ProfileBenchConfig, tmp: Path) -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy; it is in the dev extras)")
    facts = [
        orjson.dumps(f)
        for f in SessionGenerator(GeneratorConfig(instances=200, seed=21)).facts(config.facts)
    ]
    keys = [orjson.loads(f)["source"]["instance_id"].encode() for f in facts]
    out = tmp / "profile.txt"
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        source = f"profile-facts-{uuid.uuid4().hex[:8]}"
        asyncio.run(produce_records(bootstrap, source, facts, keys))
        prefix = f"profile-{uuid.uuid4().hex[:8]}"
        env = stream_worker_env(bootstrap, source, prefix)
        command = [
            py_spy, "record", "--format", "raw", "--rate", str(RATE_HZ), "--output", str(out), "--",
            sys.executable, "-m", "codex_analytics.cli.main", "stream", "worker",
        ]  # fmt: skip
        with open(tmp / "worker.log", "wb") as log:
            spy = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            from codex_analytics.contract import decode_fact
            from streams.reducer.offline import OfflineReducer

            reducer = OfflineReducer()
            expected = sum(len(reducer.apply(decode_fact(f)).events) for f in facts)
            count, _ = asyncio.run(_span(bootstrap, f"{prefix}.events", expected, within=300))
            if count < expected:
                raise RuntimeError(f"profile: {count} of {expected} events arrived")
        finally:
            # py-spy writes its file when the worker it started exits.
            children = subprocess.run(
                ["pgrep", "-P", str(spy.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            for child in children:
                os.kill(int(child), signal.SIGTERM)
            spy.wait(60)
    return out.read_text(encoding="utf-8")


def run(config: ProfileBenchConfig) -> tuple[list[Figure], str]:
    """(figures: share of samples per category, in %; the section's text)."""
    with tempfile.TemporaryDirectory() as tmp:
        profile = summarise(_record(config, Path(tmp)))
    total = max(profile.samples, 1)
    figures = [
        Figure(name, "% of samples", (count * 100 / total,))
        for name, count in sorted(profile.shares.items(), key=lambda item: -item[1])
    ]
    lines = [
        f"{profile.samples:,} samples of CPU ({RATE_HZ} Hz, all threads; start-up and "
        f"{profile.waiting:,} samples of the loop waiting in `select` left out) over "
        f"{config.facts:,} facts. Functions with the most samples of their own:",
        "",
        "| function | % of samples |",
        "|---|---:|",
        *(f"| `{name}` | {count * 100 / total:.1f} |" for name, count in profile.top),
        "",
        FINDINGS,
    ]
    return figures, "\n".join(lines)
