"""``codex-analytics produce PATH``: publish a JSON-lines file of fact envelopes."""

from __future__ import annotations

import argparse

from codex_analytics.cli.publish import add_publish_options

DESCRIPTION = """\
Publish a JSON-lines file of fact envelopes (one per line, as 'codex-analytics generate'
writes them) to the facts topic, keyed by instance id, in file order. Every line is
validated with the contract first: a bad line is reported on stderr with its number,
field path and reason, and skipped; the rest is published. Shows progress on a terminal.

Exit status: 0 when every line was published, 1 when lines were rejected or the broker
did not take the facts, 2 on a usage error.

Without KAFKA_BOOTSTRAP_SERVERS it starts an embedded broker and stops it when it ends.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="JSON-lines file of envelopes ('-': stdin)")
    add_publish_options(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from codex_analytics.cli.publish import publish_to_kafka

    if args.path == "-":
        return publish_to_kafka(sys.stdin.buffer, args, "produce")
    try:
        handle = open(args.path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        print(f"produce: cannot read {args.path}: {exc.strerror}", file=sys.stderr)
        return 2
    with handle:
        return publish_to_kafka(handle, args, "produce")
