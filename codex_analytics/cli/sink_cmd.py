"""``codex-analytics sink worker``: the delivery microservice."""

from __future__ import annotations

import argparse

from codex_analytics.cli.service import add_worker_role, run_worker_role

DESCRIPTION = """\
The sink service. 'codex-analytics sink worker' consumes the events topic in its own
consumer group, groups events by delivery route into batches (closed at
ANALYTICS_BATCH_MAX_EVENTS events, ANALYTICS_BATCH_MAX_BYTES body bytes, or
ANALYTICS_BATCH_MAX_WAIT_MS of event time), applies the upstream auth gate of each
event's contract (2026-06: ChatGPT logins only; 2026-08: per auth kind, an API key
sending only plugin-attributed events), and POSTs each batch to
{ANALYTICS_BASE_URL}/codex/analytics-events/events with the account's credential (a
bearer token, a signed AgentAssertion or external headers), its chatgpt-account-id,
X-OpenAI-Fedramp for FedRAMP accounts, and an Idempotency-Key derived from the batch's
events (the same batch gets the same key after any restart).

With CODEX_ANALYTICS_EVENTS_CAPTURE_FILE set it appends each batch body as one line to
that file instead (mode 0600) and never uses HTTP.

Transport errors, timeouts, 429 and 5xx are retried with capped, jittered exponential
backoff that honours Retry-After, while the partition's consumption pauses; other 4xx
responses, events larger than a batch, and records that do not decode go to the events
dead-letter topic with the status and response body in headers. Offsets are committed
only after a batch was delivered, captured, dead-lettered or skipped by the gate
(at-least-once). SIGTERM flushes open batches, commits and exits within
ANALYTICS_SHUTDOWN_TIMEOUT_S.

Credentials, tried in order: ANALYTICS_AUTH_KIND + its secret (ANALYTICS_BEARER_TOKEN,
ANALYTICS_AGENT_IDENTITY or ANALYTICS_AUTH_HEADERS, or their _FILE) +
ANALYTICS_ACCOUNT_ID + ANALYTICS_FEDRAMP (one account; also the account of events whose
route names none), ANALYTICS_SECRETS_DIR (a file per account id holding its token or a
JSON credential of any kind), and the Codex auth.json under CODEX_HOME. Secrets never
reach logs, metrics, topics or capture files.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_worker_role(parser, "sink", DESCRIPTION)


def run(args: argparse.Namespace) -> int:
    import os

    from sinks.credentials import CredentialChain
    from sinks.runner import run_sink
    from sinks.settings import SinkSettings

    def load() -> tuple[SinkSettings, CredentialChain]:
        return SinkSettings.from_env(), CredentialChain.from_env(os.environ)

    return run_worker_role(
        "sink",
        load,
        lambda loaded, bootstrap: run_sink(loaded[0], bootstrap, loaded[1]),
        log_level=lambda loaded: loaded[0].log_level,
    )
