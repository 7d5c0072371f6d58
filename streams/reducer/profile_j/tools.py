"""Profile J reducer rules: the tools domain (profile-j.md §5)."""

from __future__ import annotations

from ..fact_context import FactContext
from .rules import Rule

#: fact kind -> rule.
RULES: dict[str, Rule] = {}
#: server_notification method -> rule (its payload is the method's decoded view).
NOTIFICATION_RULES: dict[str, Rule] = {}


def release_turn(ctx: FactContext, thread_id: str, turn_id: str) -> None:
    """Emit the tool events held for ``(thread_id, turn_id)`` (profile-j.md §5.3.2); the
    session rules call it when the turn completes, before the turn event."""
