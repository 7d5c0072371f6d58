"""The sink's ceiling: a bare aiokafka consumer that POSTs raw record values, 500 per
request, with one shared httpx client. No decoding, no routes, no retries, no gate.

Run as a process by ``bench.sink``: ``python -m bench.sink_ceiling BOOTSTRAP TOPIC URL TOTAL``.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import httpx
from aiokafka import AIOKafkaConsumer

from codex_analytics.kafka import consumer_options

BATCH = 500


async def main(bootstrap: str, topic: str, url: str, total: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex}",
        **consumer_options(),
    )
    await consumer.start()
    seen = 0
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            while seen < total:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                posts = []
                for records in batches.values():
                    seen += len(records)
                    for start in range(0, len(records), BATCH):
                        chunk = records[start : start + BATCH]
                        body = b'{"events":[' + b",".join(r.value for r in chunk) + b"]}"
                        posts.append(client.post(url, content=body))
                for response in await asyncio.gather(*posts):
                    response.raise_for_status()
                if batches:
                    await consumer.commit()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
