"""What a benchmark that waited in vain can still find out, before it tears down.

When a step's events do not all arrive, the pipeline is still up: the broker holds the
facts and events topics, the services still run. This module looks, for every fact the
clients queued, where its events stopped:

- **not produced**: the fact is not in the facts topic (the client never sent it);
- **not reduced**: the fact is in the facts topic, but the events topic holds fewer of
  its events than the plan expects (the stream worker has not written them);
- **not delivered**: its event is in the events topic, but no accepted request carried
  it (the sink worker holds it: an open batch, a queued one, or never fetched).

It adds both consumer groups' committed offsets against the partitions' ends, the
services' ``/metrics`` (when their health ports are known) and a ``py-spy dump`` of each
service process, and writes it all to a file beside the services' logs. Every part is
bounded in time and a part that fails is reported, not raised: a diagnosis must never
hide the failure it explains.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from codex_analytics.contract import decode_fact_record
from codex_analytics.devtools.receiver import Receiver
from codex_analytics.ops.group_offsets import read_positions
from codex_analytics.runtime.kafka import read_from_start

#: How long reading a topic back may take (the topics hold a few thousand records).
READ_WITHIN_S = 10.0
#: Records of one topic read back at most.
READ_AT_MOST = 1_000_000


@dataclass(frozen=True, slots=True)
class ServiceProbe:
    """A running service to look into: its process id and its health port, if any."""

    name: str
    pid: int
    health_port: int | None = None


@dataclass(frozen=True, slots=True)
class Where:
    """Where the events of the expected facts are, as counts (the summary line)."""

    facts_expected: int
    events_expected: int
    not_produced: int
    not_reduced: int
    not_delivered: int

    def line(self) -> str:
        return (
            f"of {self.events_expected} events expected ({self.facts_expected} facts): "
            f"{self.not_produced} facts not in the facts topic, "
            f"{self.not_reduced} events not in the events topic, "
            f"{self.not_delivered} events in the events topic but not received"
        )


def locate(
    expected: Mapping[tuple[str, int], int],
    fact_records: Sequence[Any],
    event_records: Sequence[Any],
    received_events: Sequence[Any],
) -> tuple[Where, list[str]]:
    """Where each expected fact's events are: ``expected`` maps ``(instance_id, seq)`` to
    the number of events the plan makes of it; the records are aiokafka records of the
    facts and events topics; ``received_events`` the events of accepted requests.
    Returns the counts and one line per fact or event that is missing somewhere."""
    facts_at: dict[tuple[str, int], tuple[int, int]] = {}
    for record in fact_records:
        for item in decode_fact_record(record.value):
            if item.fact is not None:
                key = (item.fact.source.instance_id, item.fact.seq)
                facts_at.setdefault(key, (record.partition, record.offset))
    written: dict[tuple[str, int], list[tuple[int, int, bytes, bytes]]] = defaultdict(list)
    for record in event_records:
        try:
            obj = orjson.loads(record.value)
            origin = obj["origin"]
            key = (origin["instance_id"], origin["seq"])
            written[key].append(
                (record.partition, record.offset, orjson.dumps(obj["event"]), record.key or b"")
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    received = Counter(orjson.dumps(event) for event in received_events)
    lines: list[str] = []
    not_produced = not_reduced = not_delivered = 0
    for key, events in sorted(expected.items()):
        if events == 0:
            continue
        instance, seq = key
        at = facts_at.get(key)
        if at is None:
            not_produced += 1
            lines.append(f"not produced: {instance} seq {seq} ({events} events)")
            continue
        found = written.get(key, [])
        if len(found) < events:
            not_reduced += events - len(found)
            lines.append(
                f"not reduced: {instance} seq {seq}: facts partition {at[0]} offset {at[1]}; "
                f"{len(found)} of {events} events written"
            )
        for partition, offset, event, route in found:
            if received[event] > 0:
                received[event] -= 1
                continue
            not_delivered += 1
            lines.append(
                f"not delivered: {instance} seq {seq}: events partition {partition} offset "
                f"{offset} (route {route.decode(errors='replace')}); fact at facts partition "
                f"{at[0]} offset {at[1]}"
            )
    facts_expected = sum(1 for events in expected.values() if events)
    where = Where(
        facts_expected,
        sum(expected.values()),
        not_produced,
        not_reduced,
        not_delivered,
    )
    return where, lines


async def diagnose(
    *,
    bootstrap: str,
    facts_topic: str,
    events_topic: str,
    groups: Mapping[str, str],
    expected: Mapping[tuple[str, int], int],
    receiver: Receiver,
    services: Sequence[ServiceProbe],
    out: Path,
) -> str:
    """Look (see the module's docstring), write the report to ``out``; returns its
    summary line. Never raises."""
    report: list[str] = []
    summary = "diagnosis incomplete"
    # What had arrived when the wait ran out (more may arrive while we look).
    received, requests = receiver.accepted_events(), len(receiver.requests)
    try:
        # py-spy first: the processes' state as it was when the wait ran out.
        for service in services:
            report += [f"== py-spy dump of the {service.name} (pid {service.pid})", ""]
            report.append(await asyncio.to_thread(_py_spy_dump, service.pid))
        for service in services:
            if service.health_port is not None:
                for path in ("/livez", "/readyz", "/metrics"):
                    report += [f"== {path} of the {service.name}", ""]
                    report.append(await asyncio.to_thread(_get, service.health_port, path))
        facts = await _read(bootstrap, facts_topic)
        events = await _read(bootstrap, events_topic)
        where, lines = locate(expected, facts, events, received)
        late = len(receiver.accepted_events()) - len(received)
        summary = (
            f"{where.line()}; facts topic {len(facts)} records, events topic {len(events)} "
            f"records, receiver {requests} requests ({late} more events arrived while the "
            "diagnosis looked)"
        )
        report[:0] = [summary, "", *lines, ""]
        report += ["== records per partition (facts, events)", ""]
        for name, records in (("facts", facts), ("events", events)):
            counts = Counter(r.partition for r in records)
            ends = {p: 1 + max(r.offset for r in records if r.partition == p) for p in counts}
            report.append(
                f"{name}: "
                + ", ".join(f"p{p}: {counts[p]} (end {ends[p]})" for p in sorted(counts))
            )
        report.append("")
        for what, group in groups.items():
            topic = facts_topic if what == "stream" else events_topic
            report += [f"== {what} group {group} on {topic}", ""]
            report.append(await _positions(bootstrap, group, topic))
    except Exception as err:  # a diagnosis never hides the failure it explains
        report.append(f"diagnosis failed: {err!r}")
    await asyncio.to_thread(out.write_text, "\n".join(report) + "\n", encoding="utf-8")
    return summary


async def _read(bootstrap: str, topic: str) -> list[Any]:
    return await read_from_start(bootstrap, topic, want=READ_AT_MOST, within=READ_WITHIN_S)


async def _positions(bootstrap: str, group: str, topic: str) -> str:
    try:
        async with asyncio.timeout(READ_WITHIN_S):
            positions = await read_positions(bootstrap, group, topic)
    except Exception as err:
        return f"positions unknown: {err!r}"
    lines = [f"members {positions.members}, state {positions.state}"]
    for p in positions.partitions:
        lines.append(f"p{p.partition}: committed {p.committed}, end {p.end}, earliest {p.earliest}")
    return "\n".join(lines)


def _py_spy_dump(pid: int) -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return "py-spy is not installed"
    try:
        done = subprocess.run(
            [py_spy, "dump", "--pid", str(pid)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        return f"py-spy failed: {err!r}"
    return (done.stdout + done.stderr).decode(errors="replace")


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            text: str = answer.read().decode(errors="replace")
    except OSError as err:  # urllib's HTTPError (a 503 from /readyz) is one
        return f"{path} failed: {err!r}"
    if path != "/metrics":
        return text
    # The interesting part: our own series, not the interpreter's, without histograms'
    # buckets and creation times.
    return "\n".join(
        line
        for line in text.splitlines()
        if line.startswith("codex_") and "_bucket" not in line and "_created" not in line
    )
