"""``codex-analytics config check [SERVICE...]``: the environment, read as the services
would read it, checked before they run."""

from __future__ import annotations

import argparse
import sys

from codex_analytics.cli.service import add_only_action

DESCRIPTION = """\
Check the environment a service will run with, as the service reads it, and report
every problem at once (like 'vector validate'): each variable it reads that does not
parse (with the reason), each ANALYTICS_* / KAFKA_* / CODEX_ANALYTICS_* variable nothing
reads (with the closest declared name: a misspelling makes a service use the default
silently), the rules between variables, the paths the service needs (secrets directory
and its token files, capture file, state directory), and variables set that the checked
services do not read. Values of secret variables are never shown.

SERVICE is a command path that reads settings: gateway, stream worker (or stream), sink
worker (or sink), produce, generate, replay, offsets, receiver, demo, client...; by
default the long-running services: gateway, stream worker, sink worker.

  --connect   also reach the Kafka brokers (KAFKA_BOOTSTRAP_SERVERS: a metadata request,
              nothing created) and the analytics endpoint (a plain GET, no token sent)
  --bind      also try to listen on the services' addresses (run it where the service
              will run, before it starts)

Exit status: 0 when no finding is an error (warnings and notes are fine), 2 when any is.
"""


def register(parser: argparse.ArgumentParser) -> None:
    check = add_only_action(
        parser,
        ("action", "ACTION"),
        "check",
        help="check the environment of services (every bad or unknown variable; exit 0/2)",
        description=DESCRIPTION,
    )
    check.add_argument(
        "services", nargs="*", metavar="SERVICE", help="command paths (default: the services)"
    )
    check.add_argument(
        "--connect", action="store_true", help="also reach the brokers and the endpoint"
    )
    check.add_argument(
        "--bind", action="store_true", help="also try to listen on the listen addresses"
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="deadline of each --connect try, in seconds (default: 5)",
    )
    check.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default: text)"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os

    import orjson

    from codex_analytics.cli.config_checks import check_environment, resolve_commands
    from codex_analytics.cli.config_probes import bind_findings, connect_findings

    if args.timeout <= 0:
        print("config check: --timeout must be positive", file=sys.stderr)
        return 2
    try:
        services = resolve_commands(args.services)
    except ValueError as exc:
        print(f"config check: {exc}", file=sys.stderr)
        return 2
    # The Kafka client logs each failed connection; the findings say it once (the broker
    # probe reads those lines for their cause).
    client_log = logging.getLogger("aiokafka")
    client_log.addHandler(logging.NullHandler())
    client_log.propagate = False
    env = dict(os.environ)
    findings = check_environment(env, services)
    if args.bind:
        findings += bind_findings(env, services)
    if args.connect:
        findings += asyncio.run(connect_findings(env, services, within=args.timeout))
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning")}
    if args.format == "json":
        document = {
            "services": services,
            "ok": counts["error"] == 0,
            **{f"{level}s": count for level, count in counts.items()},
            "findings": [finding.as_json() for finding in findings],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for finding in findings:
            print(finding.line())
        print(
            f"config check of {', '.join(services)}: {counts['error']} error(s), "
            f"{counts['warning']} warning(s)"
        )
    return 2 if counts["error"] else 0
