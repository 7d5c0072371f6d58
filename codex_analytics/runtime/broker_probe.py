"""Can the brokers be reached, now, within a deadline? For ``config check --connect``.

One small function on purpose: it connects exactly as the services do, with the client
options of :class:`~codex_analytics.runtime.kafka.KafkaCluster` (where, security), so a
wrong CA or password fails here as it would in the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from codex_analytics.runtime.errors import RetryableError
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget

#: What closing a half-open admin client may take before it is left to the loop.
_CLOSE_S = 1.0


class BrokerUnreachable(RetryableError):
    """No broker answered a metadata request within the deadline; the message names the
    bootstrap servers and the cause."""


@dataclass(frozen=True, slots=True)
class BrokerAnswer:
    """What the cluster said: how many brokers, and which topics it has."""

    brokers: int
    topics: frozenset[str]


async def probe_brokers(target: KafkaTarget, *, within: float) -> BrokerAnswer:
    """Bootstrap from the cluster and read its metadata, all within ``within`` seconds;
    :class:`BrokerUnreachable` otherwise. Nothing is created or changed."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from codex_analytics.runtime.kafka_connection import diagnose
    from codex_analytics.runtime.kafka_errors import describe

    cluster = KafkaCluster.of(target)
    bootstrap = cluster.bootstrap
    started = time.monotonic()
    # Connect as every client does first: the cause in one line (a wrong CA, a TLS
    # client on a plaintext port, a refused login), which aiokafka's start() hides.
    failure = await diagnose(cluster, within=within)
    if failure is not None:
        raise BrokerUnreachable(failure.line)
    within = max(0.001, within - (time.monotonic() - started))
    admin = AIOKafkaAdminClient(
        **cluster.client_options(),
        client_id="codex-analytics-config-check",
        request_timeout_ms=max(1, int(within * 1000)),
    )
    try:
        async with asyncio.timeout(within):
            await admin.start()
            metadata = await admin.describe_cluster()
            topics = await admin.list_topics()
    except TimeoutError:
        raise BrokerUnreachable(
            f"Kafka at {bootstrap} did not answer within {within:g} s"
        ) from None
    except (KafkaError, OSError) as exc:
        raise BrokerUnreachable(f"Kafka at {bootstrap}: {describe(exc)}") from None
    finally:
        # A client that never connected has nothing worth waiting for.
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            await asyncio.wait_for(admin.close(), _CLOSE_S)
    return BrokerAnswer(brokers=len(metadata.get("brokers", ())), topics=frozenset(topics))
