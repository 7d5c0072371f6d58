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

#: Profile J (upstream ``client.rs``): the request that becomes
#: ``explicit_client_interrupt_request`` instead of a ``client_request``.
INTERRUPT_REQUEST = "turn/interrupt"
#: Profile J: upstream ``track_response_inner`` also forwards the interrupt's response.
RELEVANT_RESPONSES_J = RELEVANT_RESPONSES | {"turn/interrupt"}
#: Profile J: what upstream ``track_notification`` forwards (the guardian review's
#: *started* notification too, which the reducer ignores).
RELEVANT_NOTIFICATIONS_J = RELEVANT_NOTIFICATIONS | {
    "thread/archived",
    "thread/unarchived",
    "thread/closed",
    "item/autoApprovalReview/started",
    "item/autoApprovalReview/completed",
}


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

    def admit(self, turn_id: str, key: str | None) -> bool:
        """Whether ``(turn_id, key)`` is new. A None key always passes (upstream checks
        the bound first, so it may still clear the set)."""
        with self._lock:
            if len(self._seen) >= self._clear_at:
                self._seen.clear()
            if key is None:
                return True
            entry = (turn_id, key)
            if entry in self._seen:
                return False
            self._seen.add(entry)
            return True

    def __len__(self) -> int:
        return len(self._seen)
