"""``codex-analytics gateway``: the HTTP ingest gateway."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
The HTTP ingest gateway, for producers in other languages (the Rust app-server, for
one). POST /v1/facts takes one fact envelope or a JSON-lines batch (a JSON array with
Content-Type: application/json works too), validates every line with the contract,
publishes the valid ones to the facts topic keyed by instance id and answers, after the
broker acknowledged them, with counts and the first 100 rejected lines:

  200 all accepted    207 some lines rejected    400 all rejected or empty
  401 bad bearer token (when ANALYTICS_GATEWAY_TOKEN is set)
  413 body over ANALYTICS_GATEWAY_MAX_BODY_BYTES, more lines than
      ANALYTICS_GATEWAY_MAX_LINES, or every record refused by the broker for its size
  422 every record refused by the broker for good (another reason)
  429 + Retry-After   too many requests or body bytes in flight; send it again later
  503 + Retry-After   the broker did not acknowledge in time: send the lines named in
                      "resend" again

A rejected line names its line number, field path and reason; a record the broker
refuses is a rejection of its lines (record_too_large, refused_by_broker), never a 503.
GET /livez (the process runs), /readyz (the broker is reachable and knows the facts
topic), /metrics (Prometheus) and /healthz (deprecated alias of /readyz) are on the
same address.

At start it serves at once (/readyz answers 503), waits up to ANALYTICS_KAFKA_WAIT_S for
the broker, creates the facts topic when it is missing (ANALYTICS_CREATE_TOPICS), then
reports ready; a broker still unreachable then is one line and exit 1.

Send one instance's batches one after another (wait for the answer): the stream drops a
fact whose seq is not newer than the last one it applied for the instance.
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr", metavar="HOST:PORT", help="listen address (default: ANALYTICS_GATEWAY_ADDR)"
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from codex_analytics.cli.service import start_service
    from codex_analytics.devtools.broker import kafka_cluster
    from codex_analytics.runtime.kafka import KafkaCluster
    from producers.gateway.service import run_gateway
    from producers.gateway.settings import ADDR, GatewaySettings

    try:
        settings = GatewaySettings.from_env()
        configured = KafkaCluster.configured()
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if args.addr:
        try:
            settings = dataclasses.replace(settings, addr=args.addr)
        except ValueError as exc:
            print(f"gateway: --addr: {exc}", file=sys.stderr)
            return 2
    start_service("gateway", settings.log_level)
    with kafka_cluster(configured) as cluster:
        return run_gateway(settings, cluster, addr_from="--addr" if args.addr else ADDR.name)
