"""``codex-analytics generate``: deterministic, realistic fact streams as JSON lines."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Generate realistic fact envelopes from N simulated Codex instances: connections,
threads (new, resumed, forked), turns with config, token usage and notifications,
steers (accepted and rejected), skills, apps, plugins (uses and state changes with
local and remote ids), hooks, compactions, guardian reviews and sub-agents, plus a few
redelivered facts and facts the reducer must drop.

Instances speak one contract each (source.contract): a share of them (--j-share,
default 0.25) speaks 2026-08 (Profile J) and adds session ids, thread sources and
forks, turn profiles, interrupts, image preparations, codex errors, diffs (accepted
lines), tool items of the seven kinds, user and guardian reviews, code-mode calls,
goals, thread archive and close, plugin installs requested and failed, onboarding
imports and flushes; the others speak 2026-06 (Profile S). The 2026-06 facts of a
mixed run are the facts of a --j-share 0 run with as many 2026-06 instances.

The same --seed gives byte-identical output. Writes one envelope per line to --out
(default: stdout), or with --to-kafka straight to the facts topic (optionally at
--rate facts per second). Feed a file to 'codex-analytics reduce' or 'produce'.
"""


def register(parser: argparse.ArgumentParser) -> None:
    from codex_analytics.cli.publish import add_publish_options
    from codex_analytics.simulator import DEFAULT_J_SHARE

    parser.add_argument(
        "--instances",
        type=int,
        default=200,
        metavar="N",
        help="simulated Codex processes (default: 200)",
    )
    parser.add_argument(
        "--facts", type=int, default=50_000, metavar="M", help="facts to generate (default: 50000)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", metavar="PATH", help="output file (default: stdout)")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="publish to the facts topic instead (KAFKA_BOOTSTRAP_SERVERS, or an embedded "
        "broker for the command's lifetime), with progress",
    )
    parser.add_argument(
        "--duplicate-rate",
        type=float,
        default=0.01,
        metavar="P",
        help="share of facts redelivered with the same seq (default: 0.01)",
    )
    parser.add_argument(
        "--repeat-rate",
        type=float,
        default=0.3,
        metavar="P",
        help="chance an app/plugin use repeats within its turn (default: 0.3)",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=10,
        metavar="K",
        help="accounts the instances are spread over (default: 10)",
    )
    parser.add_argument(
        "--j-share",
        type=float,
        default=DEFAULT_J_SHARE,
        metavar="P",
        help="share of the instances speaking contract 2026-08; the others speak 2026-06 "
        f"(default: {DEFAULT_J_SHARE}; 0 = only 2026-06, 1 = only 2026-08)",
    )
    add_publish_options(parser)


def run(args: argparse.Namespace) -> int:
    import orjson

    from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

    if args.facts < 0:
        print("generate: --facts must not be negative", file=sys.stderr)
        return 2
    try:
        config = GeneratorConfig(
            instances=args.instances,
            seed=args.seed,
            duplicate_rate=args.duplicate_rate,
            repeat_use_rate=args.repeat_rate,
            accounts=args.accounts,
            j_share=args.j_share,
        )
    except ValueError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    facts = SessionGenerator(config).facts(args.facts)
    if args.to_kafka:
        from codex_analytics.cli.publish import publish_to_kafka

        return publish_to_kafka((orjson.dumps(f) for f in facts), args, "generate")
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        chunk: list[bytes] = []
        for fact in facts:
            chunk.append(orjson.dumps(fact))
            if len(chunk) >= 1024:
                out.write(b"\n".join(chunk) + b"\n")
                chunk.clear()
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()
    finally:
        if args.out:
            out.close()
    return 0
