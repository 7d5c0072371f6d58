"""The dead-letter topics as an operator reads and redrives them: the pure part.

A dead letter (:mod:`codex_analytics.runtime.deadletter`) holds the record exactly as it
was received (its value and key) and says why in its headers. This module turns records
of a DLQ topic into :class:`Letter` s, counts them (:class:`DeadLetterSummary`), and
decides which may be sent back to the topic they came from (:func:`judge`):

- a letter cut to fit (``dead_letter.truncated``) no longer holds its record: never sent;
- one that is still invalid under the current contract and settings is skipped with the
  reason the service would give it again (:class:`FactsCheck`, :class:`EventsCheck`);
- one that a redrive already sent is skipped: every redrive writes **markers** into the
  DLQ partition it read, before it sends (``started``, naming the offsets it claims) and
  after the broker acknowledged everything (``done``). A second redrive of the same range
  reads them and sends nothing twice; a ``started`` without its ``done`` (a redrive that
  died midway) is reported, and its letters are skipped unless asked (``again``).

No Kafka here; :mod:`codex_analytics.ops.dead_letter_topic` reads and writes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import orjson

from codex_analytics.contract import BATCH_BODY_OVERHEAD, decode_fact_record
from codex_analytics.runtime.deadletter import ORIGINAL_KEY_BYTES, TRUNCATED
from codex_analytics.runtime.record_size import record_bytes
from sinks.decoding import to_sink_record

from .moments import iso_ms

Headers = tuple[tuple[str, bytes], ...]

#: The header of a redrive marker (value ``started`` or ``done``); markers are no letters.
MARKER = "redrive.marker"
#: Headers on every record a redrive sends.
REDRIVE_FROM = "redrive.from"  # <dlq topic>:<partition>:<offset>
REDRIVE_AT = "redrive.at"  # ISO 8601 UTC
REDRIVE_RUN = "redrive.run"  # the run's id, as in its markers
REDRIVE_COUNT = "redrive.count"  # how many records the run sent
#: Longest header value and value preview :func:`preview` prints, in characters.
PREVIEW_CHARS = 240
#: Characters of a run id (:func:`new_run_id`).
RUN_ID_CHARS = 23


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of a dead-letter topic, as read."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers = ()

    def header(self, name: str) -> str:
        raw = next((v for k, v in self.headers if k == name), None)
        return "" if raw is None else raw.decode("utf-8", "replace")

    @property
    def reason(self) -> str:
        return self.header("error.reason") or "(no reason)"

    @property
    def source(self) -> str:
        """``topic:partition:offset`` of the record that was dead-lettered."""
        topic, partition = self.header("source.topic"), self.header("source.partition")
        return f"{topic}:{partition}:{self.header('source.offset')}"

    @property
    def source_partition(self) -> int | None:
        text = self.header("source.partition")
        return int(text) if text.isdigit() else None

    @property
    def truncated(self) -> bool:
        return self.header(TRUNCATED) == "true"

    @property
    def is_marker(self) -> bool:
        return any(k == MARKER for k, _ in self.headers)

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters a command works on: reasons (none = every reason), and a window of
    the time each was dead-lettered (its record's timestamp), both ends included."""

    reasons: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def admits(self, letter: Letter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.since_ms is not None and letter.timestamp_ms < self.since_ms:
            return False
        return self.until_ms is None or letter.timestamp_ms <= self.until_ms


# -- counting and showing ---------------------------------------------------------------


@dataclass(slots=True)
class ReasonCount:
    count: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    #: source partition -> letters
    source_partitions: Counter[int] = field(default_factory=Counter)
    samples: list[Letter] = field(default_factory=list)

    def add(self, letter: Letter, samples: int) -> None:
        self.count += 1
        ts = letter.timestamp_ms
        self.first_ms = ts if self.first_ms is None else min(self.first_ms, ts)
        self.last_ms = ts if self.last_ms is None else max(self.last_ms, ts)
        if letter.source_partition is not None:
            self.source_partitions[letter.source_partition] += 1
        if len(self.samples) < samples:
            self.samples.append(letter)


@dataclass(slots=True)
class DeadLetterSummary:
    """Letters by reason, with up to ``samples`` of each (the first ones read)."""

    samples: int = 3
    reasons: dict[str, ReasonCount] = field(default_factory=dict)
    #: DLQ partition -> letters
    partitions: Counter[int] = field(default_factory=Counter)
    truncated: int = 0

    def add(self, letter: Letter) -> None:
        self.reasons.setdefault(letter.reason, ReasonCount()).add(letter, self.samples)
        self.partitions[letter.partition] += 1
        self.truncated += letter.truncated

    @property
    def total(self) -> int:
        return sum(r.count for r in self.reasons.values())

    def to_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "truncated": self.truncated,
            "dlq_partitions": {str(p): n for p, n in sorted(self.partitions.items())},
            "reasons": {
                preview(reason.encode()): {
                    "count": r.count,
                    "first": _iso_or_none(r.first_ms),
                    "last": _iso_or_none(r.last_ms),
                    "source_partitions": {
                        str(p): n for p, n in sorted(r.source_partitions.items())
                    },
                    "samples": [sample_json(s) for s in r.samples],
                }
                for reason, r in sorted(self.reasons.items(), key=_by_count)
            },
        }


def _by_count(item: tuple[str, ReasonCount]) -> tuple[int, str]:
    return -item[1].count, item[0]


def _iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(ms)


#: Header values that are ours and short: printed as they are.
_SHOWN_HEADERS = ("error.stage", "error.path", "error.detail")
_BEARER = re.compile(rb"(?i)(bearer\s+)[^\s\"',;]+")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def preview(data: bytes | None, limit: int = PREVIEW_CHARS) -> str:
    """``data`` as one printable ASCII line of at most ``limit`` characters (plus a note
    of what was left out): every other character escaped (``\\n``, ``\\x1b``,
    ``\\u00e9``), so that a record can neither break a terminal nor forge a line of
    output; and a bearer token, should a body ever echo one, replaced by
    ``[redacted]`` (the sink redacts the ones it knows before it dead-letters a body:
    this is the second line of defence)."""
    if data is None:
        return "(none)"
    text = _BEARER.sub(rb"\1[redacted]", data).decode("utf-8", "replace")
    escaped = _NOT_PRINTABLE.sub(_escape, text.replace("\\", "\\\\"))
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(data):,} bytes)"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sample_json(letter: Letter) -> dict[str, object]:
    """A sample as ``--format json`` prints it: previews, never the raw bytes."""
    return {
        "dlq_position": letter.position,
        "dead_lettered_at": iso_ms(letter.timestamp_ms),
        "source": preview(letter.source.encode()),
        "reason": preview(letter.reason.encode()),
        **{name: preview(letter.header(name).encode()) for name in _SHOWN_HEADERS},
        "other_headers": {
            name: preview(value, 80)
            for name, value in letter.headers
            if not name.startswith(("error.", "source."))
        },
        "key": preview(letter.key, 80),
        "value_bytes": len(letter.value),
        "value": preview(letter.value),
    }


def sample_lines(letter: Letter) -> list[str]:
    """A sample as the text format prints it: a few indented lines."""
    data = sample_json(letter)
    lines = [
        f"dlq {data['dlq_position']} at {data['dead_lettered_at']}  source {data['source']}"
        f"  stage {data['error.stage']}"
    ]
    for name in ("error.path", "error.detail"):
        if data[name]:
            lines.append(f"  {name.removeprefix('error.')}: {data[name]}")
    others = data["other_headers"]
    assert isinstance(others, dict)
    if others:
        lines.append("  headers: " + ", ".join(f"{k}={v}" for k, v in others.items()))
    lines.append(f"  key: {data['key']}")
    lines.append(f"  value ({data['value_bytes']:,} bytes): {data['value']}")
    return lines


# -- redrive markers --------------------------------------------------------------------


class MarkerState(StrEnum):
    STARTED = "started"
    DONE = "done"
    #: The run stopped before sending anything (another run claimed the same letters
    #: first): its claims are void.
    CANCELLED = "cancelled"


Ranges = list[tuple[int, int]]  # inclusive offset ranges, ascending


def to_ranges(offsets: Iterable[int]) -> Ranges:
    ranges: Ranges = []
    for offset in sorted(set(offsets)):
        if ranges and offset == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], offset)
        else:
            ranges.append((offset, offset))
    return ranges


@dataclass(frozen=True, slots=True)
class RedriveMarker:
    """What one redrive run did to one DLQ partition: ``started`` claims ``ranges`` (the
    offsets it is about to send), ``done`` says the broker acknowledged every one."""

    run: str
    state: MarkerState
    at_ms: int
    target: str
    partition: int
    ranges: Ranges = field(default_factory=list)
    sent: int = 0

    def encode(self) -> tuple[bytes, list[tuple[str, bytes]]]:
        value = orjson.dumps(
            {
                "run": self.run,
                "state": self.state.value,
                "at": iso_ms(self.at_ms),
                "at_ms": self.at_ms,
                "target": self.target,
                "ranges": self.ranges,
                "sent": self.sent,
            }
        )
        return value, [(MARKER, self.state.value.encode()), (REDRIVE_RUN, self.run.encode())]

    @classmethod
    def decode(cls, letter: Letter) -> RedriveMarker | None:
        """The marker in ``letter``, or None when it is not a readable one."""
        try:
            data = orjson.loads(letter.value)
            return cls(
                run=str(data["run"]),
                state=MarkerState(data["state"]),
                at_ms=int(data["at_ms"]),
                target=str(data["target"]),
                partition=letter.partition,
                ranges=[(int(a), int(b)) for a, b in data["ranges"]],
                sent=int(data["sent"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def markers_for(
    run: str,
    state: MarkerState,
    at_ms: int,
    target: str,
    offsets: dict[int, list[int]],
    *,
    ranges_per_marker: int = 2000,
) -> list[RedriveMarker]:
    """The markers of one run: one per DLQ partition (several if its ranges are many,
    so that a marker stays far under the record limit: a range costs at most ~25 bytes)."""
    markers = []
    for partition, sent in sorted(offsets.items()):
        ranges = to_ranges(sent)
        for start in range(0, max(1, len(ranges)), ranges_per_marker):
            chunk = ranges[start : start + ranges_per_marker]
            markers.append(RedriveMarker(run, state, at_ms, target, partition, chunk, len(sent)))
    return markers


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A past redrive run, as its markers tell it."""

    run: str
    at_ms: int
    target: str
    claimed: int
    done: bool
    cancelled: bool = False

    @property
    def state(self) -> str:
        return "cancelled" if self.cancelled else "done" if self.done else "NOT FINISHED"


@dataclass(slots=True)
class RedriveLedger:
    """Every redrive run recorded in the partitions read: which letters each claimed."""

    _claims: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)
    _runs: dict[str, RunRecord] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    _cancelled: set[str] = field(default_factory=set)

    def take(self, letter: Letter) -> bool:
        """Record ``letter`` if it is a marker (an unreadable one is ignored): True then."""
        if not letter.is_marker:
            return False
        marker = RedriveMarker.decode(letter)
        if marker is not None:
            self.add(marker)
        return True

    def add(self, marker: RedriveMarker) -> None:
        if marker.state is MarkerState.DONE:
            self._done.add(marker.run)
        elif marker.state is MarkerState.CANCELLED:
            self._cancelled.add(marker.run)
        else:
            claims = self._claims.setdefault(marker.partition, [])
            claims += [(a, b, marker.run) for a, b in marker.ranges]
            seen = self._runs.get(marker.run)
            claimed = (seen.claimed if seen else 0) + sum(b - a + 1 for a, b in marker.ranges)
            self._runs[marker.run] = RunRecord(
                marker.run, marker.at_ms, marker.target, claimed, False
            )

    def claim(self, partition: int, offset: int) -> RunRecord | None:
        """The run that claimed the letter at ``partition:offset``, if any (the latest)."""
        found = None
        for first, last, run in self._claims.get(partition, ()):
            if first <= offset <= last and run not in self._cancelled:
                found = run
        return None if found is None else self.run(found)

    def run(self, run: str) -> RunRecord:
        record = self._runs[run]
        done, cancelled = run in self._done, run in self._cancelled
        return RunRecord(record.run, record.at_ms, record.target, record.claimed, done, cancelled)

    def runs(self) -> list[RunRecord]:
        return sorted((self.run(r) for r in self._runs), key=lambda r: r.at_ms)


def rival_run(
    run: str,
    claims: Mapping[int, list[int]],
    own_markers: Mapping[int, int],
    seen: Iterable[Letter],
) -> str | None:
    """Another redrive that claimed some of ``claims`` (partition -> offsets) at the same
    time as ``run``, and first: a ``started`` marker of another run, not cancelled,
    below ``run``'s own (``own_markers``: partition -> the offset of its first marker)
    in ``seen``, the partitions' records after what ``run`` had read. Two runs that
    overlap each see the other's marker once their own is acknowledged; only the one
    whose marker came second in a shared partition stops (both stop, never both go on,
    if each came first somewhere)."""
    ledger = RedriveLedger()
    rivals: list[tuple[int, RedriveMarker]] = []
    for letter in seen:
        marker = RedriveMarker.decode(letter) if letter.is_marker else None
        if marker is None or marker.run == run:
            continue
        ledger.add(marker)
        if marker.state is MarkerState.STARTED:
            rivals.append((letter.offset, marker))
    for offset, marker in rivals:
        own = own_markers.get(marker.partition)
        if own is None or offset > own or ledger.run(marker.run).cancelled:
            continue
        wanted = claims.get(marker.partition, [])
        if any(a <= o <= b for a, b in marker.ranges for o in wanted):
            return marker.run
    return None


# -- what may be sent back --------------------------------------------------------------


class FactsCheck:
    """Whether a dead-lettered facts record would pass the stream's decode now: the
    contract codec exactly as the stream calls it, with the current record limit.
    Refusals that depend on an instance's state (``state_too_large``,
    ``instance_state_full``...) cannot be known here: the stream decides again."""

    def __init__(self, max_record_bytes: int) -> None:
        self.max_record_bytes = max_record_bytes

    def problem(self, letter: Letter) -> str | None:
        for item in decode_fact_record(letter.value, max_bytes=self.max_record_bytes):
            if item.error is not None:
                return item.error.reason.value
        return None


class EventsCheck:
    """Whether a dead-lettered events record would pass the sink's decode now (the
    sink's own decoder) and fit in one request body (``ANALYTICS_BATCH_MAX_BYTES``):
    else the sink would dead-letter it again at once. Refusals by the endpoint, or a
    credential still missing, cannot be known here."""

    def __init__(self, batch_max_bytes: int) -> None:
        self.batch_max_bytes = batch_max_bytes

    def problem(self, letter: Letter) -> str | None:
        record = to_sink_record(letter.offset, letter.timestamp_ms, letter.key, letter.value)
        if record.error is not None:
            return record.error.reason.value
        if len(record.event_json) + BATCH_BODY_OVERHEAD > self.batch_max_bytes:
            return "too_large"
        return None


class Check(Protocol):
    """Why a letter would be refused again at once, or None."""

    def problem(self, letter: Letter) -> str | None: ...


class Skip(StrEnum):
    """Why a letter is not sent; the detail (a reason, a run) follows in the plan."""

    TRUNCATED = "truncated"
    STILL_INVALID = "still_invalid"
    TOO_LARGE = "over_the_record_limit"
    OTHER_SOURCE = "other_source_topic"
    ALREADY_SENT = "already_redriven"
    UNFINISHED = "claimed_by_an_unfinished_redrive"


@dataclass(frozen=True, slots=True)
class Judge:
    """Decides, letter by letter, whether it may be sent back to ``target``."""

    check: Check
    ledger: RedriveLedger
    dlq_topic: str
    target: str
    max_record_bytes: int
    #: Send letters a redrive claimed already (an operator's deliberate second send).
    again: bool = False

    def content(self, letter: Letter) -> tuple[Skip, str] | None:
        """None when what ``letter`` holds may be sent, else why not."""
        if letter.truncated:
            what = "value and key" if letter.header(ORIGINAL_KEY_BYTES) else "value"
            return Skip.TRUNCATED, f"{what} cut to fit"
        source_topic = letter.header("source.topic")
        if source_topic and source_topic != self.target:
            return Skip.OTHER_SOURCE, source_topic
        problem = self.check.problem(letter)
        if problem is not None:
            return Skip.STILL_INVALID, problem
        widest = redrive_headers(
            self.dlq_topic, letter, run="x" * RUN_ID_CHARS, at_ms=0, count=10**12
        )
        if record_bytes(letter.key, letter.value, widest) > self.max_record_bytes:
            return Skip.TOO_LARGE, f"over {self.max_record_bytes} bytes with the redrive headers"
        return None

    def claimed(self, partition: int, offset: int) -> tuple[Skip, str] | None:
        """Why the letter at ``partition:offset`` was sent already, or None. Asked once
        every marker was read: markers follow the letters they claim."""
        claim = self.ledger.claim(partition, offset)
        if claim is None or self.again:
            return None
        return (Skip.ALREADY_SENT if claim.done else Skip.UNFINISHED), claim.run


@dataclass(slots=True)
class RedrivePlan:
    """What a redrive sends (DLQ partition -> offsets, ascending) and skips."""

    send: dict[int, list[int]] = field(default_factory=dict)
    #: reasons of the letters to send -> how many
    by_reason: Counter[str] = field(default_factory=Counter)
    #: (why, detail) -> how many skipped
    skipped: Counter[tuple[Skip, str]] = field(default_factory=Counter)
    considered: int = 0
    #: Letters that could be sent but are left for a later run (``--limit``).
    left_over: int = 0

    def add(
        self, partition: int, offset: int, reason: str, verdict: tuple[Skip, str] | None
    ) -> None:
        self.considered += 1
        if verdict is None:
            self.send.setdefault(partition, []).append(offset)
            self.by_reason[reason] += 1
        else:
            self.skipped[verdict] += 1

    @property
    def to_send(self) -> int:
        return sum(self.by_reason.values())

    def skipped_of(self, *kinds: Skip) -> int:
        return sum(n for (why, _), n in self.skipped.items() if why in kinds)

    def describe_skips(self) -> list[str]:
        """One line per kind of skip: ``still_invalid 3 (not_json 2, too_long 1)``."""
        lines = []
        for why in Skip:
            details = Counter({d: n for (w, d), n in self.skipped.items() if w is why})
            if details:
                parts = ", ".join(f"{preview(d.encode(), 80)} {n:,}" for d, n in _top(details))
                lines.append(f"{why.value} {sum(details.values()):,} ({parts})")
        return lines


def _top(counts: Counter[str], most: int = 8) -> Sequence[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:most]


@dataclass(slots=True)
class Survey:
    """What ``dlq show`` gathers from a DLQ range read in offset order: the letters the
    filter admits (the first ``limit`` of them) counted by reason, and past redrives."""

    letters: LetterFilter
    summary: DeadLetterSummary
    limit: int | None = None
    ledger: RedriveLedger = field(default_factory=RedriveLedger)
    #: Admitted letters not counted, past ``limit``.
    beyond_limit: int = 0

    def feed(self, letter: Letter) -> None:
        if not self.ledger.take(letter) and self.letters.admits(letter):
            if self.limit is not None and self.summary.total >= self.limit:
                self.beyond_limit += 1
            else:
                self.summary.add(letter)


class RedrivePlanner:
    """Builds a :class:`RedrivePlan` from a DLQ partition range read in offset order:
    markers go to the ledger, letters the filter admits are checked as they come (only
    their position and reason are kept, not their bytes), and claims are applied at the
    end, once every marker is known. ``limit`` sends the first ``limit`` sendable
    letters (by partition, then offset) and leaves the rest for a later run."""

    def __init__(self, judge: Judge, letters: LetterFilter, limit: int | None = None) -> None:
        self.judge = judge
        self.letters = letters
        self.limit = limit
        self._seen: list[tuple[int, int, str, tuple[Skip, str] | None]] = []

    @property
    def ledger(self) -> RedriveLedger:
        return self.judge.ledger

    def feed(self, letter: Letter) -> None:
        if not self.ledger.take(letter) and self.letters.admits(letter):
            verdict = self.judge.content(letter)
            self._seen.append((letter.partition, letter.offset, letter.reason, verdict))

    def plan(self) -> RedrivePlan:
        plan = RedrivePlan()
        for partition, offset, reason, verdict in sorted(self._seen):
            verdict = verdict or self.judge.claimed(partition, offset)
            if verdict is None and self.limit is not None and plan.to_send >= self.limit:
                plan.left_over += 1
                plan.considered += 1
                continue
            plan.add(partition, offset, reason, verdict)
        return plan


def redrive_headers(
    dlq_topic: str, letter: Letter, *, run: str, at_ms: int, count: int
) -> list[tuple[str, bytes]]:
    """The headers a re-sent record carries: where it was, when and by which run."""
    return [
        (REDRIVE_FROM, f"{dlq_topic}:{letter.partition}:{letter.offset}".encode()),
        (REDRIVE_AT, iso_ms(at_ms).encode()),
        (REDRIVE_RUN, run.encode()),
        (REDRIVE_COUNT, str(count).encode()),
    ]


def new_run_id(at_ms: int, entropy: bytes) -> str:
    """``20261207T021530Z-ab12cd``: when, and six hex digits of ``entropy`` so that two
    runs in the same second differ."""
    stamp = iso_ms(at_ms)
    compact = stamp[:19].replace("-", "").replace(":", "") + "Z"
    return f"{compact}-{entropy.hex()[:6]}"
