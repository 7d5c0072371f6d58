"""The Profile J reducer rules (contract ``2026-08``, ``shared/spec/profile-j.md`` §5).

Three domains, as in the contract package: ``sessions`` (requests, threads, turns),
``activity`` (the events reported with thread context or none) and ``tools`` (reviews,
tool items, code mode). Each declares its ``RULES`` (and ``NOTIFICATION_RULES`` by
``server_notification`` method); the core reducer dispatches a ``2026-08`` fact here.
"""

from __future__ import annotations

from typing import Any

from ..fact_context import FactContext
from . import activity, sessions, tools
from .rules import Rule
from .state import JTables

#: server_notification method -> rule.
NOTIFICATION_RULES: dict[str, Rule] = {**sessions.NOTIFICATION_RULES, **tools.NOTIFICATION_RULES}


def server_notification(ctx: FactContext, payload: Any) -> None:
    """A notification goes to the rule of its method, with its decoded view; a method
    no rule reads changes nothing."""
    rule = NOTIFICATION_RULES.get(payload.method)
    if rule is not None and payload.view is not None:
        rule(ctx, payload.view)


#: fact kind -> rule (``initialize`` is Profile S's own rule, shared by the core reducer).
RULES: dict[str, Rule] = {
    **sessions.RULES,
    "server_notification": server_notification,
    **activity.RULES,
    **tools.RULES,
}

__all__ = ["NOTIFICATION_RULES", "RULES", "JTables", "Rule"]
