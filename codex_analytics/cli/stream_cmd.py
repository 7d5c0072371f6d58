"""``codex-analytics stream worker``: the stream microservice."""

from __future__ import annotations

import argparse

from codex_analytics.cli.service import add_worker_role, run_worker_role

DESCRIPTION = """\
The stream service. 'codex-analytics stream worker' runs one Faust worker: it consumes
fact envelopes from the facts topic (one envelope, or a pack of one instance's
envelopes, per record), de-duplicates and reduces them with per-instance state in a
changelog-backed table, and produces one record per track event to the events topic,
keyed by delivery route. Records that cannot be decoded go, unchanged, to the facts
dead-letter topic with the reason in their headers.

At-least-once: a fact's offset is committed only after its events and its state are
acknowledged by the broker. Run several workers with the same ANALYTICS_STREAM_APP_ID to
share the partitions; a restarted or rebalanced worker continues from the changelog.
"""


def register(parser: argparse.ArgumentParser) -> None:
    add_worker_role(parser, "stream", DESCRIPTION)


def run(args: argparse.Namespace) -> int:
    from streams.runner import run_worker
    from streams.settings import StreamSettings

    return run_worker_role(
        "stream", StreamSettings.from_env, run_worker, log_level=lambda s: s.log_level
    )
