"""Entry point of the ``codex-analytics`` console script.

Each subcommand lives in its own module under :mod:`codex_analytics.cli` and exposes
``register(subparsers)`` and ``run(args) -> int``. Modules are imported only when
their subcommand runs, so ``codex-analytics reduce`` never imports Kafka or Faust.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from codex_analytics import __version__
from codex_analytics.runtime.errors import ConfigError

#: (subcommand, module, one-line summary shown in ``--help``). Order is the help order.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    (
        "demo",
        "codex_analytics.cli.demo_cmd",
        "the main job: generate a load, run it through Kafka, check the events (PASS/FAIL)",
    ),
    (
        "stream",
        "codex_analytics.cli.stream_cmd",
        "the stream service: facts topic -> dedupe + reduce (Faust) -> events topic",
    ),
    (
        "sink",
        "codex_analytics.cli.sink_cmd",
        "the sink service: events topic -> batches -> POST to the analytics endpoint, or a capture file",
    ),
    (
        "gateway",
        "codex_analytics.cli.gateway_cmd",
        "the HTTP ingest gateway: POST /v1/facts -> validate -> facts topic",
    ),
    (
        "produce",
        "codex_analytics.cli.produce_cmd",
        "publish a JSON-lines file of fact envelopes to the facts topic (validated first)",
    ),
    (
        "replay",
        "codex_analytics.cli.replay_cmd",
        "re-run the stream stage from topic offsets into a capture file or a fresh topic",
    ),
    (
        "offsets",
        "codex_analytics.cli.offsets_cmd",
        "show or reset the consumer group positions of the stream and sink (dry run first)",
    ),
    (
        "topics",
        "codex_analytics.cli.topics_cmd",
        "show or create the pipeline's topics as its topic policy says (plan, apply)",
    ),
    (
        "dlq",
        "codex_analytics.cli.dlq_cmd",
        "inspect the dead-letter topics by reason; send letters back after a fix (dry run first)",
    ),
    (
        "config",
        "codex_analytics.cli.config_cmd",
        "check the environment of services before they run: every bad or unknown variable",
    ),
    (
        "smoke",
        "codex_analytics.cli.smoke_cmd",
        "smoke workflows through the running pipeline (plugin: upstream's plugin analytics smoke)",
    ),
    (
        "receiver",
        "codex_analytics.cli.receiver_cmd",
        "a local analytics endpoint: checks uploads, stores batches, injects failures",
    ),
    (
        "broker",
        "codex_analytics.cli.broker_cmd",
        "run an embedded, in-memory Kafka-compatible broker in the foreground",
    ),
    (
        "reduce",
        "codex_analytics.cli.reduce_cmd",
        "turn fact envelopes (JSON lines) into track events, offline; no broker",
    ),
    (
        "generate",
        "codex_analytics.cli.generate_cmd",
        "generate realistic, deterministic fact envelopes from simulated Codex instances",
    ),
)

DESCRIPTION = """\
Codex analytics pipeline: producers publish raw facts to Kafka, a Faust stream
de-duplicates and reduces them into track events, a sink uploads them in batches
(or writes a JSONL capture file).

Kafka: every subcommand that needs a broker uses KAFKA_BOOTSTRAP_SERVERS when it is
set; otherwise it starts an embedded broker (memory only: its data is gone when it
stops) on a free 127.0.0.1 port and stops it on exit.
"""


PROG = "codex-analytics"


class CommandParser(argparse.ArgumentParser):
    """A parser whose ``--help`` ends with the environment variables its command reads.

    That paragraph is rendered from the settings declarations when help is shown, not
    when the parser is built: the declarations import the services' settings modules,
    and every run builds the whole parser (``reduce`` must stay free of Kafka). Nested
    parsers (``stream worker``, ``offsets show``) are of this class too, since argparse
    makes subparsers of their parent's class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The paragraph is laid out already; argparse must not re-wrap it.
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        command = self.prog.removeprefix(PROG).strip()
        if command and self.epilog is None:
            from codex_analytics.cli.settings_help import environment_help

            self.epilog = environment_help(command) or None
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, module_name, summary in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=getattr(module, "DESCRIPTION", summary),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.register(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    try:
        return int(module.run(args))
    except ConfigError as exc:
        # A setting a command reads past its own checks (KAFKA_BOOTSTRAP_SERVERS where
        # a broker is started, say) is still one line naming it, and exit status 2.
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
