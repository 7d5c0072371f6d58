"""Reduce an ordered sequence of facts from many instances, in memory.

The batch twin of the stream worker: one :class:`InstanceState` per ``instance_id``, facts
applied in input order. ``codex-analytics reduce``, the tests and the demo's final check
use it; the stream worker must give the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from codex_analytics.contract import DecodeError, FactEnvelope, decode_fact

from .core import DEFAULT_HORIZON_MS, Reducer
from .drops import ReducerStats
from .fact_context import Reduction
from .state import InstanceState


class OfflineReducer:
    def __init__(
        self,
        *,
        horizon_ms: int = DEFAULT_HORIZON_MS,
        dedupe: bool = True,
        dedupe_horizon_ms: int = DEFAULT_HORIZON_MS,
    ) -> None:
        self.reducer = Reducer(
            horizon_ms=horizon_ms, dedupe=dedupe, dedupe_horizon_ms=dedupe_horizon_ms
        )
        self.states: dict[str, InstanceState] = {}

    @property
    def stats(self) -> ReducerStats:
        return self.reducer.stats

    def apply(self, fact: FactEnvelope) -> Reduction:
        state = self.states.get(fact.source.instance_id)
        if state is None:
            state = self.states[fact.source.instance_id] = InstanceState()
        return self.reducer.apply(state, fact)


@dataclass(slots=True)
class LineResult:
    """One input line: its number, and either its reduction or why it was rejected."""

    line_no: int
    reduction: Reduction | None = None
    error: DecodeError | None = None


def reduce_lines(
    lines: Iterable[bytes], reducer: OfflineReducer, *, max_bytes: int | None = None
) -> Iterator[LineResult]:
    """Decode and reduce JSON lines; blank lines are skipped, bad lines reported."""
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fact = (
                decode_fact(line) if max_bytes is None else decode_fact(line, max_bytes=max_bytes)
            )
        except DecodeError as err:
            yield LineResult(line_no, error=err)
            continue
        yield LineResult(line_no, reduction=reducer.apply(fact))
