"""``codex-analytics reduce``: fact envelopes (JSON lines) -> exact upstream events."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

DESCRIPTION = """\
Reduce fact envelopes to track events offline, with the same pure reducer the stream
worker runs. No broker is started.

Input: one fact envelope per line (PATH, or - for stdin), applied in order; each source
instance keeps its own state. Output (stdout): one line per emitted event, in emission
order, as the exact upstream JSON; with --batches, one line per upstream request body
{"events":[...]} (one body per fact that emitted events).

Like the stream worker, it emits app_used (with a connector id) and plugin_used at most
once per instance, turn and key within the dedupe window (--no-dedupe: upstream's
reducer alone, which never dedupes; its client does).

Bad lines are reported on stderr as 'line N: <field path>: <reason>: <detail>' and
skipped; the exit status is then 1 once the whole input is processed (--strict stops at
the first). Exit status 0 means every line was a valid fact.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", nargs="?", default="-", help="JSON-lines file of fact envelopes (default: stdin)"
    )
    parser.add_argument(
        "--batches",
        action="store_true",
        help='write one {"events":[...]} body per fact instead of one event per line',
    )
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line (exit 1)")
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print counts per fact kind, event type and drop reason to stderr",
    )
    parser.add_argument(
        "--warnings", action="store_true", help="print each drop warning (JSON) to stderr"
    )
    parser.add_argument(
        "--horizon-hours",
        type=float,
        default=24.0,
        metavar="H",
        help="event-time horizon after which idle reducer state expires (default: 24)",
    )
    parser.add_argument(
        "--dedupe-horizon-hours",
        type=float,
        default=24.0,
        metavar="H",
        help="window of the app/plugin use dedupe, in event time (default: 24)",
    )
    parser.add_argument("--no-dedupe", action="store_true", help="emit repeated app/plugin uses")


def run(args: argparse.Namespace) -> int:
    import orjson

    from codex_analytics.contract import encode_batch, encode_event, split_request_bodies
    from streams.reducer.offline import OfflineReducer, reduce_lines

    if args.horizon_hours <= 0 or args.dedupe_horizon_hours <= 0:
        print("reduce: horizons must be positive", file=sys.stderr)
        return 2
    reducer = OfflineReducer(
        horizon_ms=int(args.horizon_hours * 3_600_000),
        dedupe=not args.no_dedupe,
        dedupe_horizon_ms=int(args.dedupe_horizon_hours * 3_600_000),
    )
    out = sys.stdout.buffer
    err = sys.stderr
    bad = 0
    try:
        source: IO[bytes] = sys.stdin.buffer if args.path == "-" else open(args.path, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"reduce: cannot open {args.path}: {exc.strerror}", file=err)
        return 2
    try:
        with source:
            for result in reduce_lines(source, reducer):
                if result.error is not None:
                    bad += 1
                    print(f"line {result.line_no}: {result.error}", file=err)
                    if args.strict:
                        break
                    continue
                reduction = result.reduction
                assert reduction is not None
                if args.warnings:
                    for drop in reduction.drops:
                        fields = {"line": result.line_no, **drop.as_log_fields()}
                        err.write(orjson.dumps(fields).decode() + "\n")
                if not reduction.events:
                    continue
                if args.batches:
                    for body in split_request_bodies(reduction.events):
                        out.write(encode_batch(body) + b"\n")
                else:
                    out.write(b"".join(encode_event(e) + b"\n" for e in reduction.events))
        out.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return 0
    if args.stats:
        _print_stats(reducer.stats, bad, err)
    return 1 if bad else 0


def _print_stats(stats: Any, bad_lines: int, err: IO[str]) -> None:
    def table(title: str, counts: dict[str, int]) -> None:
        err.write(f"{title}:\n")
        if not counts:
            err.write("  (none)\n")
        for key in sorted(counts):
            err.write(f"  {key:<45} {counts[key]:>10}\n")

    table("facts by kind", stats.facts)
    table("events by type", stats.events)
    table("drops by reason", stats.drops)
    table("expired state", stats.expired)
    err.write(f"bad lines: {bad_lines}\n")
