"""The pure reducer on the generator's realistic mix: facts/s on one core, state sizes.

Measured without I/O: the facts are generated and decoded up front, then applied one
at a time. Three figures per run:

* reduce: ``Reducer.apply`` alone (decoded facts in, event objects out);
* decode + reduce + encode: what ``codex-analytics reduce`` does per line;
* state: bytes per open turn and per live thread, serialized (what the changelog
  carries) and in memory (tracemalloc);
* state formats: the states the mix leaves (one per instance, as they stand at the
  end), serialized as format 3 (or 4) and as the packed format 6
  (``ANALYTICS_STREAM_COMPACT_STATES``): bytes, and CPU time per ``to_bytes`` and
  ``from_bytes`` (process time: what the others' load on the machine skews least).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from codex_analytics.contract import decode_fact, encode_event
from codex_analytics.simulator.fact_builder import FactBuilder
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.reducer import InstanceState, Reducer

from .stats import Figure, repeat


@dataclass(frozen=True, slots=True)
class ReducerBenchConfig:
    facts: int = 100_000
    instances: int = 200
    runs: int = 5
    #: Entries grown per table: under every ``StateLimits`` limit (open turns: 1,024),
    #: or the state refuses the rest.
    state_entries: int = 1_000


def _lines(config: ReducerBenchConfig) -> list[bytes]:
    generator = SessionGenerator(GeneratorConfig(instances=config.instances, seed=1))
    return [orjson.dumps(f) for f in generator.facts(config.facts)]


def _reduce_only(lines: list[bytes]) -> float:
    facts = [decode_fact(line) for line in lines]
    # The stream holds a fact only while it is applied: keep the decoded inputs out of
    # the collector's way, as they would be.
    gc.collect()
    gc.freeze()
    reducer, states = Reducer(), dict[str, InstanceState]()
    try:
        started = time.perf_counter()
        for fact in facts:
            state = states.get(fact.source.instance_id)
            if state is None:
                state = states[fact.source.instance_id] = InstanceState()
            reducer.apply(state, fact)
        elapsed = time.perf_counter() - started
    finally:
        gc.unfreeze()
    return len(facts) / elapsed


def _full_line(lines: list[bytes]) -> float:
    reducer, states = Reducer(), dict[str, InstanceState]()
    started = time.perf_counter()
    for line in lines:
        fact = decode_fact(line)
        state = states.get(fact.source.instance_id)
        if state is None:
            state = states[fact.source.instance_id] = InstanceState()
        for event in reducer.apply(state, fact).events:
            encode_event(event)
    return len(lines) / (time.perf_counter() - started)


def _state_sizes(entries: int) -> tuple[float, float, float, float, float, float]:
    """(serialized, in-memory) bytes per open turn, per live thread, per dedupe key."""
    reducer = Reducer()

    def grow(make: Callable[[FactBuilder], list[dict[str, Any]]]) -> tuple[float, float]:
        builder = FactBuilder("bench-state")
        state = InstanceState()
        reducer.apply(state, decode_fact(orjson.dumps(builder.initialize(1))))
        lines = [orjson.dumps(f) for f in make(builder)]
        empty_bytes = len(state.to_bytes())
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for line in lines:  # decoded one at a time: the state keeps what it keeps
            reducer.apply(state, decode_fact(line))
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        if len(state.turns) + len(state.threads) + len(state.dedupe) < entries:
            raise RuntimeError("state benchmark: facts were not applied")
        return (len(state.to_bytes()) - empty_bytes) / entries, (after - before) / entries

    def threads(b: FactBuilder) -> list[dict[str, Any]]:
        return [b.thread_response(1, f"thread-{n:06d}") for n in range(entries)]

    def open_turns(b: FactBuilder) -> list[dict[str, Any]]:
        # Started, configured, tokens counted, not completed yet.
        facts = []
        for n in range(entries):
            turn_id = f"turn-{n:06d}"
            facts += [
                b.turn_start_request(1, n, "thread-x", images=1),
                b.turn_start_response(1, n, turn_id),
                b.resolved_config(turn_id, "thread-x"),
                b.token_usage(turn_id, "thread-x"),
                b.turn_started(turn_id, "thread-x"),
            ]
        return facts

    def dedupe_keys(b: FactBuilder) -> list[dict[str, Any]]:
        # One live key each: a connector used once in its turn (the emitted event is not kept).
        return [
            b.app_used(f"connector-{n % 50}", turn_id=f"turn-{n // 50:06d}") for n in range(entries)
        ]

    turn_bytes, turn_memory = grow(open_turns)
    thread_bytes, thread_memory = grow(threads)
    key_bytes, key_memory = grow(dedupe_keys)
    return turn_bytes, turn_memory, thread_bytes, thread_memory, key_bytes, key_memory


def _end_states(lines: list[bytes]) -> list[InstanceState]:
    reducer, states = Reducer(), dict[str, InstanceState]()
    for line in lines:
        fact = decode_fact(line)
        state = states.get(fact.source.instance_id)
        if state is None:
            state = states[fact.source.instance_id] = InstanceState()
        reducer.apply(state, fact)
    return list(states.values())


def _cpu_us_per_state(states: list[Any], work: Callable[[Any], object]) -> float:
    started = time.process_time()
    for state in states:
        work(state)
    return 1e6 * (time.process_time() - started) / len(states)


def _format_figures(
    states: list[InstanceState], name: str, compact: bool, runs: int
) -> list[Figure]:
    saved = [state.to_bytes(compact=compact) for state in states]

    def write() -> float:
        return _cpu_us_per_state(states, lambda state: state.to_bytes(compact=compact))

    def read() -> float:
        return _cpu_us_per_state(saved, InstanceState.from_bytes)

    return [
        Figure(
            f"end states of the mix, {name}, bytes per state",
            "bytes",
            (sum(map(len, saved)) / len(saved),),
        ),
        Figure(f"end states of the mix, {name}, to_bytes CPU per state", "us", repeat(runs, write)),
        Figure(
            f"end states of the mix, {name}, from_bytes CPU per state", "us", repeat(runs, read)
        ),
    ]


def run(config: ReducerBenchConfig) -> list[Figure]:
    lines = _lines(config)
    sizes = _state_sizes(config.state_entries)
    states = _end_states(lines)
    return [
        Figure(
            "reduce only (Reducer.apply), one core",
            "facts/s",
            repeat(config.runs, lambda: _reduce_only(lines)),
        ),
        Figure(
            "decode + reduce + encode, one core",
            "facts/s",
            repeat(config.runs, lambda: _full_line(lines)),
        ),
        Figure("state per open turn, serialized", "bytes", (sizes[0],)),
        Figure("state per open turn, in memory", "bytes", (sizes[1],)),
        Figure("state per live thread, serialized", "bytes", (sizes[2],)),
        Figure("state per live thread, in memory", "bytes", (sizes[3],)),
        Figure("state per live dedupe key, serialized", "bytes", (sizes[4],)),
        Figure("state per live dedupe key, in memory", "bytes", (sizes[5],)),
        *_format_figures(states, "format 3 (or 4)", False, config.runs),
        *_format_figures(states, "format 6, packed", True, config.runs),
    ]
