"""Default topic names and the environment variables that override them."""

from __future__ import annotations

FACTS_TOPIC = "analytics.facts"
FACTS_DLQ_TOPIC = "analytics.facts.dlq"
EVENTS_TOPIC = "analytics.events"
EVENTS_DLQ_TOPIC = "analytics.events.dlq"

FACTS_TOPIC_ENV = "ANALYTICS_FACTS_TOPIC"
FACTS_DLQ_TOPIC_ENV = "ANALYTICS_FACTS_DLQ_TOPIC"
EVENTS_TOPIC_ENV = "ANALYTICS_EVENTS_TOPIC"
EVENTS_DLQ_TOPIC_ENV = "ANALYTICS_EVENTS_DLQ_TOPIC"
