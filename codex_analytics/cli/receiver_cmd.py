"""``codex-analytics receiver``: a local analytics endpoint for stacks and tests."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codex_analytics.devtools.receiver import Faults

DESCRIPTION = """\
A small HTTP server that plays the analytics endpoint (chatgpt.com/backend-api) for
local stacks and tests. Point a sink at it with
ANALYTICS_BASE_URL=http://HOST:PORT/backend-api/.

It checks every upload like the real endpoint: POST .../codex/analytics-events/events,
'Authorization: Bearer' and chatgpt-account-id present (401 otherwise; --no-auth-check
to skip), Content-Type application/json (415), a body {"events":[...]} whose every event
matches the contract (400 naming the event and field). A valid upload is answered 200
and its batch appended to --store as one JSON line {received_at_ms, idempotency_key,
account_id, fedramp, events}; a repeated Idempotency-Key is answered 200 and not stored
again. GET /received serves the stored lines, GET /healthz the count.

Failure injection, for tests: --fail-first N uploads, then every --fail-every K-th
upload, are answered --fail-status with --retry-after; --delay S slows every answer.

Every flag has an environment variable (listed below); the flag wins.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr", metavar="HOST:PORT", help="listen address (default: ANALYTICS_RECEIVER_ADDR)"
    )
    parser.add_argument("--store", metavar="PATH", help="append accepted batches here (JSON lines)")
    parser.add_argument(
        "--no-auth-check", action="store_true", help="accept uploads without auth headers"
    )
    parser.add_argument("--fail-first", type=int, metavar="N", help="fail the first N uploads")
    parser.add_argument("--fail-every", type=int, metavar="K", help="then fail every K-th upload")
    parser.add_argument(
        "--fail-status",
        type=int,
        metavar="STATUS",
        help="status of a failed upload (default: ANALYTICS_RECEIVER_FAIL_STATUS)",
    )
    parser.add_argument("--retry-after", metavar="SECONDS", help="Retry-After of a failed upload")
    parser.add_argument(
        "--delay", type=float, metavar="S", help="wait S seconds before every answer"
    )


def read_settings(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[str, str | None, Faults]:
    """Listen address, store and faults: each flag, else its variable (read only then)."""
    from codex_analytics.devtools import receiver

    return (
        args.addr or receiver.ADDR.read(env),
        args.store or receiver.STORE.read(env),
        receiver.Faults(
            status=args.fail_status or receiver.FAIL_STATUS.read(env),
            first=args.fail_first if args.fail_first is not None else receiver.FAIL_FIRST.read(env),
            every=args.fail_every if args.fail_every is not None else receiver.FAIL_EVERY.read(env),
            retry_after=args.retry_after or receiver.RETRY_AFTER.read(env),
            delay=args.delay if args.delay is not None else receiver.DELAY_S.read(env),
        ),
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal
    import sys

    from codex_analytics.devtools.receiver import Receiver

    try:
        addr, store, faults = read_settings(args, os.environ)
    except ValueError as exc:
        print(f"receiver: {exc}", file=sys.stderr)
        return 2
    if not 100 <= faults.status <= 599 or faults.first < 0 or faults.every < 0:
        print(
            "receiver: --fail-status must be an HTTP status; counts must not be negative",
            file=sys.stderr,
        )
        return 2
    if store:
        try:
            open(store, "ab").close()  # fail now, not at the first upload
        except OSError as exc:
            print(f"receiver: cannot write {store}: {exc.strerror}", file=sys.stderr)
            return 2

    async def main() -> int:
        receiver = Receiver(
            validate=True, require_auth=not args.no_auth_check, store=store, faults=faults
        )
        try:
            await receiver.start(addr)
        except (OSError, ValueError) as exc:
            print(f"receiver: cannot listen on {addr}: {exc}", file=sys.stderr)
            return 2
        host = addr.rpartition(":")[0] or "127.0.0.1"
        print(
            f"receiver: ANALYTICS_BASE_URL=http://{host}:{receiver.port}/backend-api/ "
            f"store {store or '(none)'}",
            file=sys.stderr,
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await receiver.stop()
        return 0

    return asyncio.run(main())
