"""Scaling: how the stream stage's cost grows with its live state, on one core, no I/O.

The state-holding core of the worker as ``streams/worker.py`` drives it, without its Kafka
sends: a :class:`~streams.processor.FactProcessor` (worker defaults: batches of 2,000
records, 20,000 decoded states cached) over a store of ``instance id bytes -> state
bytes`` (the ``memory://`` Faust table is such a dict); ``load_state`` reads the store,
and after each batch every changed state is written back. Records carry one fact
envelope each, in the generator's wire form (``FactBuilder``), and go through
``decode_fact_record``.

For each size N:

1. Seed N live instances, each holding one connection, one thread, one open turn
   (started, configured, tokens counted) and one live dedupe key (an ``app_used`` in the
   open turn): N live instances and N live dedupe keys. Pushing 8 N facts through the
   reducer would take minutes at 10^6, so one instance is reduced for real and its state
   bytes are copied with the instance id substituted; a sample of instances (the first
   ``check_sample`` and the last) is reduced for real as well and must match byte for byte.
2. Steady state: untimed warm-up passes (one fact for each of as many instances as the
   cache holds, then a pass as below), then ``runs`` timed passes of
   ``facts_per_run`` mid-turn facts (token usage, repeated app uses that the dedupe drops,
   hooks, skills), each for a uniformly random live instance, so the state size stays put.
   facts/s = facts / seconds spent building the batch's records, in ``process()`` and
   writing the states back. Random access is the worst case for the cache: once N is
   above its size, most facts pay a store read and a decode. Explained by: the share of
   decoded-state cache hits, the states written back per 1,000 facts (an instance seen
   twice in a batch is written once) and the share of the time the cyclic garbage
   collector runs (``gc.callbacks``).
3. Horizon: both reducer horizons are ``horizon_ms`` of event time (24 h in the worker,
   1 h here: the mechanism is the same). First, fresh instances start sessions past the
   horizon while the N instances stay silent (instance ids are per process start: a
   process that exits never sends again). Then each of the N instances sends one more
   fact past the horizon, which runs its expiry sweep (timed: facts/s of that pass).
4. Retention: then nobody writes for the retention, and the worker's idle sweep
   (``streams.sweep``; every state carries the worker's write time) deletes every
   state: memory after it, and stored states looked at per second (the changelog
   tombstones the worker also writes are not timed here).

Memory is counted, not sampled from the OS, so it is deterministic:

* store, exact size: ``sys.getsizeof`` of the dict (its table), of every key and of
  every value;
* store, as held: the same, each value as the worker allocates it. ``to_bytes`` returns
  orjson's output, and orjson (3.12 on) keeps its whole output buffer, at least 4 KiB,
  whatever the length; each distinct value length is probed once under ``tracemalloc``.
  (Values recovered from the changelog after a restart are the Kafka client's bytes
  instead, until rewritten.)
* caches: the processor's decoded states (``sys.getsizeof`` of its ``OrderedDict``
  plus, per entry, what ``tracemalloc`` sees allocated when an evenly spaced sample of
  the cached states is decoded afresh: they all have one shape) and the decoder's
  bounded cache of ``source`` blocks (every object reachable from it). The reducer
  itself holds only counters.

"Per instance" is the store divided by N; each live instance holds one dedupe key, so it
is also the cost per live dedupe key (the key's own serialized share is reported
separately). Flat per-instance figures across sizes mean linear growth. RSS is not
reported: the allocator keeps freed memory, so it would not show what the stage lets go.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import random
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson

from codex_analytics.contract import codec
from codex_analytics.simulator.fact_builder import BASE_MS, FactBuilder, skill
from streams.processor import FactProcessor, SourceRecord
from streams.reducer import InstanceState, Reducer, state_packing
from streams.runner import tune_gc
from streams.settings import HOUR_MS, StreamSettings
from streams.sweep import find_idle, stamp, state_of

from .stats import Figure

_WORKER: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(StreamSettings)}
_TOPIC = "analytics.facts"
_PARTITIONS = 8
_STEP_MS = 1_000
#: Facts that open one live instance (see ``_session_start``); the next seq is one more.
_SEED_FACTS = 8
#: Instances that start sessions past the horizon while the N seeded ones stay silent.
_LATECOMERS = 100
#: ``to_bytes`` results per probe of the worker's allocation (see ``_allocated``): about
#: 1 KB allocated once per probe (caches, not the values) is spread over them, which
#: 32 results overstated by ~30 bytes per value.
_PROBES = 1_000
#: Dedupe keys added to one state to size one (see ``_dedupe_key_costs``).
_MORE_KEYS = 32
#: Cached states decoded under tracemalloc to size the cache (see ``_cached_states_bytes``).
_CACHE_SAMPLE = 2_000
_MIX = ("token_usage", "app_used", "hook_run", "skill_invoked")
_MIX_WEIGHTS = (3, 3, 2, 2)

Record = tuple[int, bytes, bytes]  # (partition, key, value)


@dataclass(frozen=True, slots=True)
class ScalingBenchConfig:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    runs: int = 3
    #: Mid-turn facts timed per run and size.
    facts_per_run: int = 40_000
    #: As the worker: ``batch_max_records`` and ``state_cache_size`` defaults.
    batch_records: int = int(_WORKER["batch_max_records"])
    state_cache_size: int = int(_WORKER["state_cache_size"])
    #: As ``ANALYTICS_STREAM_COMPACT_STATES`` (state format 6 instead of 3).
    compact_states: bool = bool(_WORKER["compact_states"])
    #: State and dedupe horizon, event time.
    horizon_ms: int = HOUR_MS
    #: Instances also seeded through ``process()`` to check the copied states.
    check_sample: int = 1_000
    seed: int = 1


#: The smoke (CI): a decoded-state cache smaller than the largest size, as in the full
#: run, so cache misses and store reads are gone through at a tenth of the instances.
QUICK = ScalingBenchConfig(
    sizes=(1_000, 5_000), runs=1, facts_per_run=3_000, check_sample=200, state_cache_size=2_000
)


# -- facts ------------------------------------------------------------------------------


def _name(index: int) -> str:
    """A ``host/pid-N/boot-X`` instance id like the client's, always 40 characters."""
    return f"scale-host-{index % 64:02d}/pid-{1000 + index % 9000}/boot-{index:012x}"


def _builder(index: int, seq: int, at_ms: int) -> FactBuilder:
    """Instance ``index``'s builder, about to emit fact ``seq`` at ``at_ms``."""
    builder = FactBuilder(_name(index), originator="codex_vscode", step_ms=_STEP_MS)
    builder.auth = {"kind": "chatgpt", "account_id": f"acct-{index % 10:03d}", "is_fedramp": False}
    builder.seq = itertools.count(seq)
    builder.now_ms = at_ms - _STEP_MS
    return builder


def _ids(builder: FactBuilder) -> tuple[str, str]:
    return f"{builder.instance_id}-th1", f"{builder.instance_id}-tu1"


def _session_start(index: int, at_ms: int) -> list[bytes]:
    """A process starting up to its first turn: one live instance, one live dedupe key."""
    b = _builder(index, 1, at_ms)
    thread, turn = _ids(b)
    facts = [
        b.initialize(1, client_name="codex-vscode", product_client_id="codex_vscode"),
        b.thread_response(1, thread, created_at=b.now_ms // 1000, request_id=1),
        b.turn_start_request(1, 2, thread, images=1),
        b.turn_start_response(1, 2, turn),
        b.turn_started(turn, thread, started_at=b.now_ms // 1000),
        b.resolved_config(turn, thread, num_input_images=1, model="gpt-5-codex"),
        b.token_usage(turn, thread, total=4_321),
        b.app_used("drive", turn_id=turn, thread_id=thread),
    ]
    assert len(facts) == _SEED_FACTS
    return [orjson.dumps(f) for f in facts]


def _mid_turn(index: int, seq: int, kind: str, at_ms: int) -> bytes:
    """One fact of the open turn that leaves the state's size as it is."""
    b = _builder(index, seq, at_ms)
    thread, turn = _ids(b)
    if kind == "token_usage":
        fact = b.token_usage(turn, thread, total=4_321 + seq)
    elif kind == "app_used":  # the turn's connector again: the dedupe drops it
        fact = b.app_used("drive", turn_id=turn, thread_id=thread)
    elif kind == "hook_run":
        fact = b.hook_run("completed", turn_id=turn, thread_id=thread)
    else:
        fact = b.skill_invoked(skill("lint"), turn_id=turn, thread_id=thread)
    return orjson.dumps(fact)


def _at(seq: int) -> int:
    """Seeded instances keep one clock: fact ``seq`` is observed ``seq`` seconds in."""
    return BASE_MS + seq * _STEP_MS


# -- the core ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Core:
    """The worker's processor and store, fed as ``StreamWorker`` feeds them (through ``streams.commit.BatchCommit``)."""

    processor: FactProcessor
    store: dict[bytes, bytes]
    batch_records: int
    #: ``load_state`` calls (cache misses) and instances loaded per batch (hits + misses).
    reads: int = 0
    loads: int = 0
    offset: int = 0
    #: The worker's clock (ms) when it writes states: their stamp for the idle sweep.
    clock_ms: int = 0

    def load_state(self, instance_id: str, partition: int) -> bytes | None:
        self.reads += 1
        return state_of(self.store.get(instance_id.encode()))

    def feed(self, records: list[Record]) -> float:
        """Process ``records`` in worker-sized batches: seconds spent in the core."""
        spent = 0.0
        store, process, load = self.store, self.processor.process, self.load_state
        for start in range(0, len(records), self.batch_records):
            chunk = records[start : start + self.batch_records]
            began = time.perf_counter()
            batch = [
                SourceRecord(_TOPIC, partition, self.offset + n, key, value)
                for n, (partition, key, value) in enumerate(chunk)
            ]
            out = process(batch, load)
            for instance_id, state in out.states.items():
                store[instance_id.encode()] = stamp(
                    state, self.clock_ms, out.partitions[instance_id]
                )
            spent += time.perf_counter() - began
            self.offset += len(chunk)
            self.loads += len(out.partitions)
            if out.dead_letters or out.facts != len(chunk):
                raise RuntimeError(f"scaling bench: {len(out.dead_letters)} facts dead-lettered")
        return spent


class _GcClock:
    """Seconds the cyclic garbage collector runs while this is in ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def _processor(config: ScalingBenchConfig) -> FactProcessor:
    return FactProcessor(
        Reducer(horizon_ms=config.horizon_ms, dedupe_horizon_ms=config.horizon_ms),
        state_cache_size=config.state_cache_size,
        compact_states=config.compact_states,
    )


def _reduced(indices: Iterable[int], config: ScalingBenchConfig) -> dict[bytes, bytes]:
    """The store a fresh worker holds after the session starts of ``indices``."""
    core = _Core(_processor(config), {}, config.batch_records)
    records: list[Record] = []
    for index in indices:
        key = _name(index).encode()
        records += [(index % _PARTITIONS, key, v) for v in _session_start(index, _at(1))]
    core.feed(records)
    return core.store


def _renamed(state: bytes, old: bytes, new: bytes) -> bytes:
    """A state's bytes with instance id ``old`` replaced by ``new`` (inside a packed one)."""
    if state_packing.is_packed(state):
        return state_packing.pack(state_packing.unpack(state).replace(old, new))
    return state.replace(old, new)


def _seed(n: int, config: ScalingBenchConfig) -> dict[bytes, bytes]:
    template_key = _name(0).encode()
    template = state_of(_reduced([0], config)[template_key]) or b""
    store = {}
    for index in range(n):
        key = _name(index).encode()
        store[key] = stamp(_renamed(template, template_key, key), 0, index % _PARTITIONS)
    sample = sorted({*range(min(n, config.check_sample)), n - 1})
    real = _reduced(sample, config)
    wrong = [key for key, state in real.items() if store[key] != state]
    if wrong or len(real) != len(sample):
        raise RuntimeError(
            f"scaling bench: seeded state differs from the reducer's for {wrong[:3]}"
        )
    state = InstanceState.from_bytes(template)
    shape = (len(state.connections), len(state.threads), len(state.turns), len(state.dedupe))
    if shape != (1, 1, 1, 1) or state.requests:
        raise RuntimeError(f"scaling bench: unexpected live state {state!r}")
    return store


# -- memory -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Memory:
    """What the core holds at one moment, in bytes."""

    #: The store's dict (its table) and its keys.
    store_table: int
    store_keys: int
    #: The store's values at their exact size (``sys.getsizeof``) ...
    values_exact: int
    #: ... and as the worker allocates them (see ``_allocated``).
    values_held: int
    #: The processor's decoded-state cache.
    states: int
    #: The decoder's cache of decoded ``source`` blocks.
    sources: int

    @property
    def store_exact(self) -> int:
        return self.store_table + self.store_keys + self.values_exact

    @property
    def store_held(self) -> int:
        return self.store_table + self.store_keys + self.values_held

    @property
    def total(self) -> int:
        return self.store_held + self.states + self.sources


def _allocated(value: bytes) -> int:
    """Heap bytes of the stored ``value`` as the worker holds it: the ``to_bytes``
    result, stamped (orjson's whole output buffer, at least 4 KiB, is kept only by a
    result that is stored as it is)."""
    state = InstanceState.from_bytes(state_of(value) or b"")
    head = value[: len(value) - len(state_of(value) or b"")]
    compact = (state_of(value) or b"")[:1] != b"{"  # formats 3 and 4 are JSON objects
    gc.collect()
    tracemalloc.start()
    try:
        copies = [head + state.to_bytes(compact=compact) for _ in range(_PROBES)]
        size = tracemalloc.get_traced_memory()[0] - sys.getsizeof(copies)
    finally:
        tracemalloc.stop()
    if copies[0] != value:
        raise RuntimeError("scaling bench: a state does not survive from_bytes/to_bytes")
    return size // _PROBES


def _store_bytes(
    store: dict[bytes, bytes], leave_out: Iterable[bytes]
) -> tuple[int, int, int, int]:
    """(table, keys, values exact, values held): the dict's table, its keys, and the
    values at their exact size or as the worker allocates them (one probe per distinct
    value length)."""
    skip = set(leave_out)
    keys = 0
    lengths: dict[int, int] = {}
    examples: dict[int, bytes] = {}
    for key, value in store.items():
        if key in skip:
            continue
        keys += sys.getsizeof(key)
        n = len(value)
        if n in lengths:
            lengths[n] += 1
        else:
            lengths[n], examples[n] = 1, value
    exact = sum(count * sys.getsizeof(examples[n]) for n, count in lengths.items())
    held = sum(count * _allocated(examples[n]) for n, count in lengths.items())
    return sys.getsizeof(store), keys, exact, held


def _cached_states_bytes(core: _Core) -> int:
    """The processor's decoded-state cache: its ``OrderedDict`` (``sys.getsizeof``)
    plus, per entry, its key and state as ``tracemalloc`` sees them allocated when decoded
    afresh from the saved bytes. This bench's states all have one shape, so an evenly
    spaced sample of the entries stands for all of them."""
    cache = core.processor._cache  # the worker's cache, only read
    if not cache:
        return sys.getsizeof(cache)
    keys = list(cache)
    sample = keys[:: max(1, len(keys) // _CACHE_SAMPLE)]
    gc.collect()
    tracemalloc.start()
    try:
        ids = [key.encode().decode() for key in sample]
        states = [
            InstanceState.from_bytes(state_of(core.store[key.encode()]) or b"") for key in ids
        ]
        entries = tracemalloc.get_traced_memory()[0] - sys.getsizeof(ids) - sys.getsizeof(states)
    finally:
        tracemalloc.stop()
    return sys.getsizeof(cache) + entries * len(keys) // len(sample)


def _reachable_bytes(root: object) -> int:
    """``sys.getsizeof`` of every object reachable from ``root`` (classes and modules
    excluded), each counted once."""
    seen: set[int] = set()
    stack, size = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return size


def _memory(core: _Core, leave_out: Iterable[bytes] = ()) -> _Memory:
    table, keys, exact, held = _store_bytes(core.store, leave_out)
    # The decoder remembers the last source block of up to 4,096 instances (cleared whole
    # when full): bounded, but part of what the stream stage holds.
    sources = _reachable_bytes(codec._SOURCE_CACHE)
    return _Memory(table, keys, exact, held, _cached_states_bytes(core), sources)


@dataclass(frozen=True, slots=True)
class _DedupeKeyCost:
    """What one live dedupe key costs, in bytes."""

    #: The seeded state's one key, in its serialized state.
    serialized: int
    #: Per key added to a seeded state: what its stored value grows by, as held ...
    stored: float
    #: ... and what the state grows by decoded (as the processor's cache holds it).
    decoded: float


def _dedupe_key_costs(config: ScalingBenchConfig) -> _DedupeKeyCost:
    """The seeded state's key, serialized; and, averaged over ``_MORE_KEYS`` keys added
    to its open turn (apps of distinct random names, that no other state shares and no
    dictionary knows), what each adds to the stored value and to the decoded state."""
    saved = state_of(next(iter(_reduced([0], config).values()))) or b""
    compact = config.compact_states
    more = InstanceState.from_bytes(saved)
    (turn_id, use, _), seen = next(iter(more.dedupe.items()))
    rng = random.Random(config.seed)
    for n in range(_MORE_KEYS):
        more.dedupe[(turn_id, use, f"connector_{rng.getrandbits(64):016x}")] = seen + n
    more_saved = more.to_bytes(compact=compact)
    without = InstanceState.from_bytes(saved)
    without.dedupe.clear()
    return _DedupeKeyCost(
        serialized=len(saved) - len(without.to_bytes(compact=compact)),
        # Both are exact size (``dumps_kept``, ``state_packing.pack``): as held is length.
        stored=(len(more_saved) - len(saved)) / _MORE_KEYS,
        decoded=(_decoded_bytes(more_saved) - _decoded_bytes(saved)) / _MORE_KEYS,
    )


def _decoded_bytes(saved: bytes) -> int:
    """What ``tracemalloc`` sees held by one state decoded from ``saved``."""
    gc.collect()
    tracemalloc.start()
    try:
        state = InstanceState.from_bytes(saved)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del state
    return size


# -- one size ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SizeResult:
    rates: list[float]
    cache_hits: list[float]
    writes: list[float]
    gc_shares: list[float]
    live: _Memory
    #: States in the decoded-state cache then.
    cached: int
    silent: _Memory
    back: _Memory
    back_rate: float
    #: After the idle sweep deleted every state, and how fast it looked at them.
    swept: _Memory
    sweep_rate: float
    wall: float


def _measure(n: int, config: ScalingBenchConfig) -> _SizeResult:
    started = time.perf_counter()
    rng = random.Random(config.seed * 1_000_003 + n)
    core = _Core(_processor(config), _seed(n, config), config.batch_records)
    seqs = array("q", [_SEED_FACTS + 1]) * n  # each seeded instance's next seq

    def mid_turn(indices: list[int]) -> list[Record]:
        records = []
        kinds = rng.choices(_MIX, _MIX_WEIGHTS, k=len(indices))
        for index, kind in zip(indices, kinds, strict=True):
            seq = seqs[index]
            seqs[index] = seq + 1
            value = _mid_turn(index, seq, kind, _at(seq))
            records.append((index % _PARTITIONS, _name(index).encode(), value))
        return records

    def anywhere() -> list[int]:
        return [rng.randrange(n) for _ in range(config.facts_per_run)]

    # Warm-up: the cache holds as many recently seen instances as a running worker's would.
    core.feed(mid_turn(rng.sample(range(n), min(n, config.state_cache_size))))
    core.feed(mid_turn(anywhere()))
    rates, cache_hits, writes, gc_shares = [], [], [], []
    for _ in range(config.runs):
        records = mid_turn(anywhere())
        core.reads = core.loads = 0
        gc.collect()
        clock = _GcClock()
        gc.callbacks.append(clock)
        try:
            seconds = core.feed(records)
        finally:
            gc.callbacks.remove(clock)
        rates.append(len(records) / seconds)
        gc_shares.append(100 * clock.seconds / seconds)
        cache_hits.append(100 * (1 - core.reads / core.loads))
        writes.append(1000 * core.loads / len(records))
    if len(core.store) != n:
        raise RuntimeError("scaling bench: the steady state changed the number of instances")
    live = _memory(core)
    cached = len(core.processor._cache)  # only read

    # Past the horizon: every entry of the seeded instances was touched at last_touch or
    # before. Other instances start sessions; the seeded ones stay silent.
    last_touch = _at(max(seqs) - 1)
    after = last_touch + config.horizon_ms + _STEP_MS
    latecomers = range(n, n + _LATECOMERS)
    records = []
    for index in latecomers:
        key = _name(index).encode()
        records += [(index % _PARTITIONS, key, v) for v in _session_start(index, after)]
    core.feed(records)
    new_keys = [_name(index).encode() for index in latecomers]
    silent = _memory(core, leave_out=new_keys)

    # Each seeded instance comes back once, past the horizon: its expiry sweep runs.
    expired_before = dict(core.processor.reducer.stats.expired)
    seconds = 0.0
    chunk = 20 * config.batch_records
    for first in range(0, n, chunk):
        records = []
        for index in range(first, min(n, first + chunk)):
            b = _builder(index, seqs[index], after + _STEP_MS)
            thread, turn = _ids(b)
            hook = b.hook_run(
                "completed", event_name="SessionStart", turn_id=turn, thread_id=thread
            )
            records.append((index % _PARTITIONS, _name(index).encode(), orjson.dumps(hook)))
        seconds += core.feed(records)
    expired = core.processor.reducer.stats.expired
    for what in ("connections", "threads", "turns", "dedupe_keys"):
        if expired.get(what, 0) - expired_before.get(what, 0) != n:
            raise RuntimeError(f"scaling bench: not every seeded instance expired its {what}")
    if not InstanceState.from_bytes(state_of(core.store[_name(n - 1).encode()]) or b"").is_empty:
        raise RuntimeError("scaling bench: a state past the horizon is not empty")
    back = _memory(core, leave_out=new_keys)

    # Past the retention nobody wrote again: the worker's idle sweep deletes every state
    # (streams.sweep; the worker then writes changelog tombstones, not timed here).
    began = time.perf_counter()
    items = ((key, value, None) for key, value in core.store.items())
    found = find_idle(items, cutoff_ms=1, partitions=range(_PARTITIONS))
    for key, _ in found.idle:
        del core.store[key]
        core.processor.forget(key.decode())
    sweep_rate = (len(found.idle) + found.kept) / (time.perf_counter() - began)
    if core.store:
        raise RuntimeError(f"scaling bench: {len(core.store)} states survived the idle sweep")
    swept = _memory(core)
    return _SizeResult(
        rates=rates,
        cache_hits=cache_hits,
        writes=writes,
        gc_shares=gc_shares,
        live=live,
        cached=cached,
        silent=silent,
        back=back,
        back_rate=n / seconds,
        swept=swept,
        sweep_rate=sweep_rate,
        wall=time.perf_counter() - started,
    )


#: The rows measured again with compact states (format 6) when the worker's default
#: writes format 3: what ``ANALYTICS_STREAM_COMPACT_STATES=true`` holds.
_COMPACT_ROWS = (
    "live, store per instance and dedupe key, as held",
    "live, store per instance: its value as held",
    "live, memory (store as held + caches)",
    "back once past the horizon, store per instance, as held",
)


_COMPACT = ", compact states (format 6)"


def run(config: ScalingBenchConfig) -> list[Figure]:
    compact = dataclasses.replace(config, compact_states=True)
    previous = tune_gc()  # as the worker does
    try:
        results = {n: _measure(n, config) for n in config.sizes}
        compact_results = (
            {} if config.compact_states else {n: _measure(n, compact) for n in config.sizes}
        )
    finally:
        gc.set_threshold(*previous)
    mib = 1024 * 1024
    figures: list[Figure] = []

    def each(
        name: str,
        unit: str,
        value: Callable[[_SizeResult, int], float | list[float]],
        measured: dict[int, _SizeResult] = results,
        suffix: str = "",
    ) -> None:
        for n, result in measured.items():
            samples = value(result, n)
            figures.append(
                Figure(
                    f"{n:,} instances: {name}{suffix}",
                    unit,
                    tuple(samples) if isinstance(samples, list) else (samples,),
                )
            )

    rows: list[tuple[str, str, Callable[[_SizeResult, int], float | list[float]]]] = [
        ("steady state, process(), one core", "facts/s", lambda r, n: r.rates),
        ("steady state, decoded-state cache hits", "%", lambda r, n: r.cache_hits),
        ("steady state, states written back per 1,000 facts", "states", lambda r, n: r.writes),
        ("steady state, share of the time in the cyclic GC", "%", lambda r, n: r.gc_shares),
        (
            "live, store per instance and dedupe key, as held",
            "bytes",
            lambda r, n: r.live.store_held / n,
        ),
        (
            "live, store per instance and dedupe key, exact size",
            "bytes",
            lambda r, n: r.live.store_exact / n,
        ),
        (
            "live, store per instance: the dict's table",
            "bytes",
            lambda r, n: r.live.store_table / n,
        ),
        ("live, store per instance: its key", "bytes", lambda r, n: r.live.store_keys / n),
        (
            "live, store per instance: its value as held",
            "bytes",
            lambda r, n: r.live.values_held / n,
        ),
        (
            "live, decoded-state cache per cached state",
            "bytes",
            lambda r, n: r.live.states / max(1, r.cached),
        ),
        (
            "live, caches (decoded states, sources)",
            "MiB",
            lambda r, n: (r.live.states + r.live.sources) / mib,
        ),
        ("live, memory (store as held + caches)", "MiB", lambda r, n: r.live.total / mib),
        (
            "silent past the horizon, store per instance, as held",
            "bytes",
            lambda r, n: r.silent.store_held / n,
        ),
        (
            "back once past the horizon, store per instance, as held",
            "bytes",
            lambda r, n: r.back.store_held / n,
        ),
        (
            "back once past the horizon, store per instance, exact size",
            "bytes",
            lambda r, n: r.back.store_exact / n,
        ),
        (
            "back once past the horizon, memory (store as held + caches)",
            "MiB",
            lambda r, n: r.back.total / mib,
        ),
        (
            "back once past the horizon (expiry sweeps), process()",
            "facts/s",
            lambda r, n: r.back_rate,
        ),
        (
            "silent past the retention, after the idle sweep, store per instance",
            "bytes",
            lambda r, n: r.swept.store_held / n,
        ),
        (
            "silent past the retention, after the idle sweep, memory (store + caches)",
            "MiB",
            lambda r, n: r.swept.total / mib,
        ),
        ("idle sweep (find + delete), stored states", "states/s", lambda r, n: r.sweep_rate),
        ("wall time (seed, runs, horizon)", "s", lambda r, n: r.wall),
    ]
    for name, unit, value in rows:
        each(name, unit, value)
    for name, unit, value in rows:
        if name in _COMPACT_ROWS and compact_results:
            each(name, unit, value, compact_results, _COMPACT)
    for costs, suffix in (
        (_dedupe_key_costs(config), ""),
        *(() if config.compact_states else ((_dedupe_key_costs(compact), _COMPACT),)),
    ):
        figures += [
            Figure(f"one live dedupe key, serialized share{suffix}", "bytes", (costs.serialized,)),
            Figure(f"one more live dedupe key, store as held{suffix}", "bytes", (costs.stored,)),
            Figure(f"one more live dedupe key, decoded (cache){suffix}", "bytes", (costs.decoded,)),
        ]
    return figures
