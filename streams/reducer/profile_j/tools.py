"""Profile J reducer rules: the tools domain (profile-j.md §5.3-§5.4).

Reviews (``reviews``), tool items (``tool_items``), code mode (``code_mode``) and the
tool events code mode holds back (``held_events``), released here by ``turn/completed``
(through :func:`release_turn`), ``thread/closed`` and ``flush``.
"""

from __future__ import annotations

from codex_analytics.contract.profile_j import tool_facts as tf

from ..fact_context import FactContext
from . import held_events, reviews
from .code_mode import code_mode_tool_call
from .rules import Rule
from .tool_items import item_completed, item_started


def release_turn(ctx: FactContext, thread_id: str, turn_id: str) -> None:
    """Emit the tool events held for ``(thread_id, turn_id)`` (profile-j.md §5.3.2); the
    session rules call it when the turn completes, before the turn event."""
    held_events.release_turn(ctx, thread_id, turn_id)


def thread_closed(ctx: FactContext, view: tf.ThreadClosedParams) -> None:
    """``thread/closed``: the held events of every turn of the thread, in order."""
    held_events.release_thread(ctx, view.thread_id)


def flush(ctx: FactContext, payload: tf.FlushPayload) -> None:
    """``flush`` (PROPOSAL): every held event, of every thread, as one output list."""
    held_events.release_all(ctx)


#: fact kind -> rule.
RULES: dict[str, Rule] = {
    "server_request": reviews.server_request,
    "server_response": reviews.server_response,
    "effective_permissions_approval_response": reviews.effective_permissions_approval_response,
    "server_request_aborted": reviews.server_request_aborted,
    "code_mode_tool_call": code_mode_tool_call,
    "flush": flush,
}
#: server_notification method -> rule (its payload is the method's decoded view).
NOTIFICATION_RULES: dict[str, Rule] = {
    "item/started": item_started,
    "item/completed": item_completed,
    "item/autoApprovalReview/completed": reviews.guardian_review_completed,
    "thread/closed": thread_closed,
}
