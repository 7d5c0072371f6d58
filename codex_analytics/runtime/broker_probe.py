"""Can the brokers be reached, now, within a deadline? For ``config check --connect``.

One small function on purpose: it must connect exactly as the services do (the same
client options: security, timeouts), so when those options change it is rewired here,
and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from codex_analytics.runtime.errors import RetryableError

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


async def probe_brokers(bootstrap: str, *, within: float) -> BrokerAnswer:
    """Bootstrap from ``bootstrap`` and read the cluster's metadata, all within ``within``
    seconds; :class:`BrokerUnreachable` otherwise. Nothing is created or changed."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from codex_analytics.runtime.kafka_errors import describe

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="codex-analytics-config-check",
        request_timeout_ms=max(1, int(within * 1000)),
    )
    try:
        async with asyncio.timeout(within):
            await admin.start()
            cluster = await admin.describe_cluster()
            topics = await admin.list_topics()
    except TimeoutError:
        raise BrokerUnreachable(
            f"Kafka at {bootstrap} did not answer within {within:g} s"
        ) from None
    except KafkaConnectionError:
        # aiokafka's text lists resolved addresses and repeats its class name: say it.
        raise BrokerUnreachable(
            f"Kafka at {bootstrap}: no bootstrap server accepted a connection "
            "(refused, closed or not resolvable)"
        ) from None
    except (KafkaError, OSError) as exc:
        raise BrokerUnreachable(f"Kafka at {bootstrap}: {describe(exc)}") from None
    finally:
        # A client that never connected has nothing worth waiting for.
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            await asyncio.wait_for(admin.close(), _CLOSE_S)
    return BrokerAnswer(brokers=len(cluster.get("brokers", ())), topics=frozenset(topics))
