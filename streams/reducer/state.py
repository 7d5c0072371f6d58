"""The reducer state of one source instance, and its byte form.

A plain value: dicts of small slotted records, no references to the outside world. It
serializes to compact JSON (orjson) so that it can live in a Faust table and its
changelog, and ``InstanceState.from_bytes(s.to_bytes())`` continues exactly where ``s``
stood (insertion order included, so expiry sweeps also behave the same).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import orjson

from codex_analytics.contract.codec import dumps_kept
from codex_analytics.contract.events import AppServerClientMetadata
from codex_analytics.contract.facts import RuntimeMetadata, TokenUsage
from codex_analytics.contract.schema import decoder_for
from codex_analytics.contract.versions import CONTRACT_S, ContractId

from . import state_packing
from .derive import Completion, TurnConfig
from .profile_j.state import JTables

#: 4 added the instance's contract and its Profile J tables. A Profile S instance is
#: still written as 3 (the same bytes as before Profile J), so that workers of the
#: previous release read what new ones write during a rolling upgrade.
STATE_FORMAT_VERSION = 4
PROFILE_S_STATE_FORMAT_VERSION = 3
_READABLE_VERSIONS = frozenset({PROFILE_S_STATE_FORMAT_VERSION, STATE_FORMAT_VERSION})
#: 5, compact: a Profile S state as one JSON array, every record positional (no field
#: names): ``[5, last_seq, watermark_ms, last_sweep_ms, connections, requests, threads,
#: turns, dedupe]``, each table as in 3, with the client, runtime and token-usage records
#: as arrays of their fields in declaration order. About 0.6 of format 3's bytes. Read
#: always; written only inside format 6.
COMPACT_STATE_FORMAT_VERSION = 5
#: 6, packed (``state_packing``): format 5 of a Profile S state, or format 4 of a
#: Profile J one, deflated with a preset dictionary: about 0.2 of format 3's bytes.
#: Written only when asked (``to_bytes(compact=True)``): workers of releases before it
#: cannot read it, so a deployment turns it on once every worker reads it. Read always.
PACKED_STATE_FORMAT_VERSION = state_packing.PACKED_STATE_FORMAT_VERSION


@dataclass(slots=True)
class Connection:
    client: AppServerClientMetadata
    runtime: RuntimeMetadata
    touched_ms: int


@dataclass(slots=True)
class PendingRequest:
    """A ``turn/start`` (``expected_turn_id is None``) or ``turn/steer`` awaiting its answer."""

    is_steer: bool
    thread_id: str
    expected_turn_id: str | None
    num_input_images: int
    created_at: int | None
    touched_ms: int


@dataclass(slots=True)
class ThreadMetadata:
    """``thread_connections`` and ``thread_metadata`` of reducer.md §2, set together."""

    connection_id: int
    thread_source: str | None
    initialization_mode: str
    subagent_source: str | None
    parent_thread_id: str | None
    touched_ms: int


@dataclass(slots=True)
class TurnState:
    touched_ms: int
    connection_id: int | None = None
    thread_id: str | None = None
    num_input_images: int | None = None
    #: The mapped values of the turn's ``turn_resolved_config`` (``derive.turn_config``).
    resolved_config: TurnConfig | None = None
    started_at: int | None = None
    token_usage: TokenUsage | None = None
    completed: Completion | None = None
    steer_count: int = 0


RequestKey = tuple[int, int | str]


@dataclass(frozen=True, slots=True)
class StateLimits:
    """Most entries one instance's state holds, per table (PROPOSAL, docs/contract.md).

    Expiry bounds the state in time (24 h of event time); these bound it in size within
    that time, whatever a producer sends. A fact that would add an entry to a full table
    is dropped as ``instance_state_full`` and dead-lettered; entries already there are
    never evicted (that would change later events silently). Each is far above what one
    Codex process holds, and each table alone at its limit, with entries of ordinary
    size, stays well under the 1 MiB a state record may take (measured per entry:
    connection ~265 B, pending request ~80 B, thread ~80 B, open turn ~345 B, dedupe
    key ~90 B: at most ~720 KB, for the dedupe keys).

    A Profile J instance keeps its requests, threads and turns in its own tables
    (``profile_j.state``), bounded by the same ``requests``, ``threads`` and ``turns``
    (its Profile S tables of those names stay empty).
    """

    #: Connections (``initialize``): a process has a handful.
    connections: int = 1024
    #: ``turn/start`` / ``turn/steer`` requests awaiting their answer (answered in seconds).
    requests: int = 1024
    #: Threads started, resumed or forked within the horizon.
    threads: int = 4096
    #: Turns not emitted yet (a turn is emitted, and forgotten, once complete).
    turns: int = 1024
    #: Windowed dedupe keys (one per turn and app or plugin used within the horizon).
    dedupe_keys: int = 8192
    # -- Profile J tools (profile-j.md §5.3-§5.4; the 256-entry caps inside a record are
    # upstream's own) --
    #: Tool items started and not completed yet (~85 B each).
    tool_items_started: int = 4096
    #: Approval requests awaiting their answer (~300 B each).
    pending_reviews: int = 1024
    #: Review summaries of tool items not completed yet (~240 B each).
    item_review_summaries: int = 2048
    #: Turns with code-mode correlation (response ids, child cells, held events; ~100 B
    #: without held events).
    tool_responses: int = 1024
    #: Code-mode cells (~160 B each).
    code_mode_cells: int = 4096
    #: Tool events held across all turns (~1.1 KB each: ~580 KB at the limit). Past it an
    #: event is released at once, as upstream does past its 256 per turn.
    held_tool_events: int = 512
    #: Profile J: images prepared in one open turn (``image_preparation``, ~200 B each;
    #: upstream keeps them all, a turn rarely has more than a few).
    image_preparations_per_turn: int = 512


_CLIENT_FIELDS = tuple(f.name for f in fields(AppServerClientMetadata))
_RUNTIME_FIELDS = tuple(f.name for f in fields(RuntimeMetadata))
_USAGE_FIELDS = tuple(f.name for f in fields(TokenUsage))


class InstanceState:
    """Everything the reducer remembers about one source instance."""

    __slots__ = (
        "connections",
        "contract",
        "dedupe",
        "j",
        "last_seq",
        "last_sweep_ms",
        "requests",
        "threads",
        "turns",
        "watermark_ms",
    )

    def __init__(self) -> None:
        #: The contract of the instance's first fact; every later fact must speak it
        #: (profile-j.md §1). None until the first fact is applied.
        self.contract: ContractId | None = None
        #: Profile J's own tables, for a ``2026-08`` instance (None for ``2026-06``).
        self.j: JTables | None = None
        #: Highest ``seq`` applied; facts at or below it are duplicates (design.md §4).
        self.last_seq = -1
        #: Highest ``observed_at_ms`` seen: the instance's event-time clock for expiry.
        self.watermark_ms = 0
        self.last_sweep_ms = 0
        self.connections: dict[int, Connection] = {}
        # Keyed by (connection id, JSON request id): 3 and "3" are different requests.
        self.requests: dict[RequestKey, PendingRequest] = {}
        self.threads: dict[str, ThreadMetadata] = {}
        self.turns: dict[str, TurnState] = {}
        #: Windowed dedupe: (turn_id, "app" | "plugin", key) -> event time first emitted.
        self.dedupe: dict[tuple[str, str, str], int] = {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InstanceState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"InstanceState(last_seq={self.last_seq}, connections={len(self.connections)}, "
            f"requests={len(self.requests)}, threads={len(self.threads)}, turns={len(self.turns)}, "
            f"dedupe={len(self.dedupe)}" + ("" if self.j is None else f", j={self.j.sizes()}") + ")"
        )

    @property
    def is_empty(self) -> bool:
        return not (
            self.connections
            or self.requests
            or self.threads
            or self.turns
            or self.dedupe
            or (self.j is not None and not self.j.is_empty)
        )

    # -- bytes ---------------------------------------------------------------------------

    def to_bytes(self, *, compact: bool = False) -> bytes:
        """The state's bytes: format 3 (Profile S) or 4; with ``compact``, format 6
        instead: the compact format 5 of a Profile S state, or format 4, packed (see
        ``PACKED_STATE_FORMAT_VERSION``)."""
        if not compact:
            return dumps_kept(self._to_json())  # the store keeps it
        if self.j is None and self.contract in (None, CONTRACT_S):
            return state_packing.pack(orjson.dumps(self._to_compact_json()))
        return state_packing.pack(orjson.dumps(self._to_json()))

    def _to_json(self) -> dict[str, Any]:
        """Format 3 (Profile S) or 4, before serializing."""
        # A Profile S instance's bytes name no contract and no J tables (absent means
        # 2026-06): it costs no more to hold than before Profile J.
        extra: dict[str, Any] = {}
        if self.contract is not None and self.contract != CONTRACT_S:
            extra["contract"] = self.contract
        if self.j is not None:
            extra["j"] = self.j.to_json()
        connections, requests, threads, turns, dedupe = self._rows(positional=False)
        return {
            "v": STATE_FORMAT_VERSION if extra else PROFILE_S_STATE_FORMAT_VERSION,
            **extra,
            "last_seq": self.last_seq,
            "watermark_ms": self.watermark_ms,
            "last_sweep_ms": self.last_sweep_ms,
            "connections": connections,
            "requests": requests,
            "threads": threads,
            "turns": turns,
            "dedupe": dedupe,
        }

    def _to_compact_json(self) -> list[Any]:
        """Format 5 (a Profile S state), before serializing."""
        return [
            COMPACT_STATE_FORMAT_VERSION,
            self.last_seq,
            self.watermark_ms,
            self.last_sweep_ms,
            *self._rows(positional=True),
        ]

    def _rows(self, *, positional: bool) -> tuple[list[Any], ...]:
        """The Profile S tables as rows: connections, requests, threads, turns, dedupe
        keys, the same in every format (inverse: ``_restore_tables``). The client,
        runtime and token-usage records are objects (formats 3, 4), or with
        ``positional`` arrays of their fields in declaration order (format 5)."""

        def record(value: Any, names: tuple[str, ...]) -> Any:
            return [getattr(value, name) for name in names] if positional else value

        return (
            [
                [
                    cid,
                    record(c.client, _CLIENT_FIELDS),
                    record(c.runtime, _RUNTIME_FIELDS),
                    c.touched_ms,
                ]
                for cid, c in self.connections.items()
            ],
            [
                [
                    cid,
                    rid,
                    r.is_steer,
                    r.thread_id,
                    r.expected_turn_id,
                    r.num_input_images,
                    r.created_at,
                    r.touched_ms,
                ]
                for (cid, rid), r in self.requests.items()
            ],
            [
                [
                    tid,
                    t.connection_id,
                    t.thread_source,
                    t.initialization_mode,
                    t.subagent_source,
                    t.parent_thread_id,
                    t.touched_ms,
                ]
                for tid, t in self.threads.items()
            ],
            [
                [
                    turn_id,
                    t.touched_ms,
                    t.connection_id,
                    t.thread_id,
                    t.num_input_images,
                    t.resolved_config,
                    t.started_at,
                    None if t.token_usage is None else record(t.token_usage, _USAGE_FIELDS),
                    None
                    if t.completed is None
                    else [
                        t.completed.status,
                        t.completed.turn_error,
                        t.completed.completed_at,
                        t.completed.duration_ms,
                    ],
                    t.steer_count,
                ]
                for turn_id, t in self.turns.items()
            ],
            [[*key, seen] for key, seen in self.dedupe.items()],
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> InstanceState:
        """Inverse of :meth:`to_bytes`. Raises ``ValueError`` on foreign or corrupt bytes."""
        if state_packing.is_packed(data):
            inner = state_packing.unpack(data)  # raises ValueError on corrupt bytes itself
            if state_packing.is_packed(inner):
                raise ValueError("corrupt reducer state: packed twice")
            return cls.from_bytes(inner)
        try:
            raw = orjson.loads(data)
            if type(raw) is list and raw and raw[0] == COMPACT_STATE_FORMAT_VERSION:
                version = COMPACT_STATE_FORMAT_VERSION
            else:
                version = raw.get("v")
        except Exception as err:
            raise ValueError(f"corrupt reducer state: {err}") from err
        if version == COMPACT_STATE_FORMAT_VERSION:
            return cls._from_compact(raw)  # raises ValueError on corrupt bytes itself
        if version not in _READABLE_VERSIONS:
            raise ValueError(f"unsupported reducer state version {version!r}")
        try:
            return cls._from_json(raw)
        except Exception as err:
            raise ValueError(f"corrupt reducer state: {err!r}") from err

    @classmethod
    def _from_compact(cls, raw: list[Any]) -> InstanceState:
        try:
            _, last_seq, watermark_ms, last_sweep_ms, conns, requests, threads, turns, dedupe = raw
            state = cls()
            state.contract = CONTRACT_S if last_seq >= 0 else None
            state.last_seq = last_seq
            state.watermark_ms = watermark_ms
            state.last_sweep_ms = last_sweep_ms
            _restore_tables(
                state,
                conns,
                requests,
                threads,
                turns,
                dedupe,
                client_of=lambda client: AppServerClientMetadata(*client),
                runtime_of=lambda runtime: RuntimeMetadata(*runtime),
                usage_of=lambda usage: TokenUsage(*usage),
            )
        except Exception as err:
            raise ValueError(f"corrupt reducer state: {err!r}") from err
        return state

    @classmethod
    def _from_json(cls, raw: dict[str, Any]) -> InstanceState:
        client_of = decoder_for(AppServerClientMetadata)
        runtime_of = decoder_for(RuntimeMetadata)
        usage_of = decoder_for(TokenUsage)
        state = cls()
        # No contract: a Profile S instance (every version 3 state is one), or a new one.
        state.contract = raw.get("contract", CONTRACT_S if raw["last_seq"] >= 0 else None)
        j = raw.get("j")
        state.j = None if j is None else JTables.from_json(j)
        state.last_seq = raw["last_seq"]
        state.watermark_ms = raw["watermark_ms"]
        state.last_sweep_ms = raw["last_sweep_ms"]
        _restore_tables(
            state,
            raw["connections"],
            raw["requests"],
            raw["threads"],
            raw["turns"],
            raw["dedupe"],
            client_of=client_of,
            runtime_of=runtime_of,
            usage_of=usage_of,
        )
        return state


def _restore_tables(
    state: InstanceState,
    connections: list[Any],
    requests: list[Any],
    threads: list[Any],
    turns: list[Any],
    dedupe: list[Any],
    *,
    client_of: Callable[[Any], AppServerClientMetadata],
    runtime_of: Callable[[Any], RuntimeMetadata],
    usage_of: Callable[[Any], TokenUsage],
) -> None:
    """Fill the Profile S tables from their serialized rows (the same rows in every
    format; only how a client, a runtime and a token usage are written differs).

    A decoded state is held (the processor's cache), and parsing gives every string its
    own object: a thread id named by its turn, a turn id by its dedupe keys and names such
    as ``"codex_vscode"`` or ``"gpt-5-codex"`` in every state would each be held again.
    So ids named twice share the object of their table's key, and the other strings are
    interned (``sys.intern``: a string is freed once no state holds it)."""
    for cid, client, runtime, touched in connections:
        state.connections[cid] = Connection(
            client_of(_interned(client)), runtime_of(_interned(runtime)), touched
        )
    thread_ids: dict[str, str] = {}
    for tid, cid, source, mode, subagent, parent, touched in threads:
        thread_ids[tid] = tid
        state.threads[tid] = ThreadMetadata(
            cid, _intern(source), _intern(mode), _intern(subagent), parent, touched
        )
    turn_ids: dict[str, str] = {}
    for (
        turn_id,
        touched,
        cid,
        thread_id,
        images,
        config,
        started_at,
        usage,
        completed,
        steers,
    ) in turns:
        turn_ids[turn_id] = turn_id
        state.turns[turn_id] = TurnState(
            touched_ms=touched,
            connection_id=cid,
            thread_id=thread_ids.get(thread_id, thread_id),
            num_input_images=images,
            resolved_config=None if config is None else tuple(_interned(config)),
            started_at=started_at,
            token_usage=None if usage is None else usage_of(usage),
            completed=None if completed is None else Completion(*_interned(completed)),
            steer_count=steers,
        )
    for cid, rid, is_steer, thread_id, expected, images, created_at, touched in requests:
        state.requests[(cid, rid)] = PendingRequest(
            is_steer,
            thread_ids.get(thread_id, thread_id),
            expected if expected is None else turn_ids.get(expected, expected),
            images,
            created_at,
            touched,
        )
    for turn_id, use, key, seen in dedupe:
        state.dedupe[(turn_ids.get(turn_id, turn_id), sys.intern(use), sys.intern(key))] = seen


def _intern(value: Any) -> Any:
    return sys.intern(value) if type(value) is str else value


def _interned(record: Any) -> Any:
    """A serialized record (a JSON array, or object of format 3) with its strings
    interned. (Anything else is left for the decoder to refuse.)"""
    if type(record) is list:
        return [sys.intern(v) if type(v) is str else v for v in record]
    if type(record) is dict:
        return {k: sys.intern(v) if type(v) is str else v for k, v in record.items()}
    return record
