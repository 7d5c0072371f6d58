"""The sink's two ceilings, each run as a process by ``bench.sink``:

* ``python -m bench.sink_ceiling kafka BOOTSTRAP TOPIC URL TOTAL``: a bare aiokafka
  consumer (the sink's consumer settings) that POSTs raw record values, 500 per
  request, with one shared httpx client. No decoding, no routes, no retries, no gate.
* ``python -m bench.sink_ceiling bodies FILE URL [CLIENT]``: a bare loop that POSTs the
  request bodies (and headers) the sink itself sent, read from ``FILE`` (JSON lines of
  ``[headers, body]``), one after another with one client (``httpx``, the default, or
  ``aiohttp``): HTTP alone.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import aiohttp
import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from codex_analytics.contract import join_batch
from codex_analytics.runtime.kafka import consumer_options
from sinks.worker import CONSUMER_TUNING

BATCH = 500


async def from_kafka(bootstrap: str, topic: str, url: str, total: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex}",
        **{**consumer_options(), **CONSUMER_TUNING},  # Kafka's share as the sink pays it
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
                        body = join_batch([r.value for r in chunk])
                        posts.append(client.post(url, content=body))
                for response in await asyncio.gather(*posts):
                    response.raise_for_status()
                if batches:
                    await consumer.commit()
    finally:
        await consumer.stop()


async def from_bodies(requests: list[tuple[dict[str, str], str]], url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for headers, body in requests:
            response = await client.post(url, content=body.encode(), headers=headers)
            response.raise_for_status()


async def from_bodies_aiohttp(requests: list[tuple[dict[str, str], str]], url: str) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for headers, body in requests:
            async with session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                response.raise_for_status()


if __name__ == "__main__":
    if sys.argv[1] == "kafka":
        asyncio.run(from_kafka(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        lines = Path(sys.argv[2]).read_bytes().splitlines()
        requests = [orjson.loads(line) for line in lines]
        loop = from_bodies_aiohttp if sys.argv[4:] == ["aiohttp"] else from_bodies
        asyncio.run(loop(requests, sys.argv[3]))
