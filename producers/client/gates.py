"""Client-side gates that decide, before a fact is queued, whether it is queued at all
(``delivery.md`` §1-2). Pure and thread-safe; no I/O."""

from __future__ import annotations

import threading

#: Upstream clears a dedupe set completely once it holds this many entries.
DEDUPE_CLEAR_AT = 4096

#: The June client forwards only what the reducer (or Profile J) reads. The seed client
#: forwards everything; the reducer ignores the rest, so both are conformant.
RELEVANT_REQUESTS = frozenset({"turn/start", "turn/steer"})
RELEVANT_RESPONSES = frozenset(
    {"thread/start", "thread/resume", "thread/fork", "turn/start", "turn/steer"}
)
RELEVANT_NOTIFICATIONS = frozenset(
    {"turn/started", "turn/completed", "turn/diff/updated", "item/started", "item/completed"}
)


class TurnKeyDedupe:
    """Upstream's ``(turn_id, key)`` emitted-set: admit a key once per turn.

    Once the set holds :data:`DEDUPE_CLEAR_AT` entries it is cleared completely before
    the next insert (upstream's crude bound; the stream's windowed dedupe is the exact
    one). An entry is recorded even when the fact is later dropped by a full queue.
    """

    __slots__ = ("_clear_at", "_lock", "_seen")

    def __init__(self, clear_at: int = DEDUPE_CLEAR_AT) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._clear_at = clear_at
        self._lock = threading.Lock()

    def admit(self, turn_id: str, key: str) -> bool:
        entry = (turn_id, key)
        with self._lock:
            if len(self._seen) >= self._clear_at:
                self._seen.clear()
            if entry in self._seen:
                return False
            self._seen.add(entry)
            return True

    def __len__(self) -> int:
        return len(self._seen)
