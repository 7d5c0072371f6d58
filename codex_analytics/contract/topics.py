"""Default topic names and the environment variables that override them, and the path
of the analytics upload endpoint under its base URL (``delivery.md`` §3.1)."""

from __future__ import annotations

FACTS_TOPIC = "analytics.facts"
FACTS_DLQ_TOPIC = "analytics.facts.dlq"
EVENTS_TOPIC = "analytics.events"
EVENTS_DLQ_TOPIC = "analytics.events.dlq"

FACTS_TOPIC_ENV = "ANALYTICS_FACTS_TOPIC"
FACTS_DLQ_TOPIC_ENV = "ANALYTICS_FACTS_DLQ_TOPIC"
EVENTS_TOPIC_ENV = "ANALYTICS_EVENTS_TOPIC"
EVENTS_DLQ_TOPIC_ENV = "ANALYTICS_EVENTS_DLQ_TOPIC"

#: ``POST {base_url without trailing /}`` + this uploads one batch of events.
EVENTS_PATH = "/codex/analytics-events/events"
