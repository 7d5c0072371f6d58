"""Profile J: contract ``2026-08`` (``shared/spec/profile-j.md``), beside Profile S.

Every fact kind of a ``2026-08`` producer and every event type a ``2026-08`` instance
emits, in three domains, one pair of modules each (facts in, events out):

* ``session_*``: connections, requests, threads, sub-agents and turns (the turn event,
  steer, accepted lines, thread archive);
* ``activity_*``: what happens within a session, reported with thread context or none
  (guardian reviews, compaction, goals, skills, apps, hooks, plugins, onboarding);
* ``tool_*``: server requests and reviews, tool items and code-mode tool calls.

Each module declares its own table (``PAYLOADS``, ``EVENTS``, ``NOTIFICATION_VIEWS``);
this package assembles them. The codec picks this table for a fact whose
``source.contract`` is ``2026-08``.
"""

from __future__ import annotations

from typing import Any, TypeAlias, Union

from . import (
    activity_events,
    activity_facts,
    session_events,
    session_facts,
    tool_events,
    tool_facts,
)
from .notifications import NOTIFICATION_VIEWS, ServerNotificationPayloadJ

#: kind -> payload model, for a ``2026-08`` fact.
PAYLOAD_TYPES: dict[str, type[Any]] = {
    **session_facts.PAYLOADS,
    "server_notification": ServerNotificationPayloadJ,
    **activity_facts.PAYLOADS,
    **tool_facts.PAYLOADS,
}
FACT_KINDS: tuple[str, ...] = tuple(PAYLOAD_TYPES)
#: Kinds whose envelope ``connection_id`` is an integer (profile-j.md §3 "conn").
CONNECTION_SCOPED_KINDS = frozenset(
    {
        "initialize",
        "client_request",
        "client_response",
        "error_response",
        "explicit_client_interrupt_request",
        "server_request",
    }
)
#: event_type -> event model, for an event of a ``2026-08`` instance.
EVENT_MODELS: dict[str, type[Any]] = {
    **session_events.EVENTS,
    **activity_events.EVENTS,
    **tool_events.EVENTS,
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)
#: Any event of a ``2026-08`` instance.
TrackEventJ: TypeAlias = Union[session_events.Event, activity_events.Event, tool_events.Event]  # noqa: UP007

__all__ = [
    "CONNECTION_SCOPED_KINDS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "FACT_KINDS",
    "NOTIFICATION_VIEWS",
    "PAYLOAD_TYPES",
    "ServerNotificationPayloadJ",
    "TrackEventJ",
]
