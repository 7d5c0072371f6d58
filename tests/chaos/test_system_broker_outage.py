"""The broker unreachable for ~10 s mid-run: every connection of every client cut and
new ones refused, then the broker back with all its data. The embedded broker keeps its
data in memory only, so a real restart would be a new, empty cluster; the outage is made
with a proxy in front of it instead (see ``proxy.proxied_broker``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from codex_analytics.devtools.receiver import Answer, Receiver
from tests.integration.stream_helpers import expected_events, generated_facts, produce

from .proxy import proxied_broker
from .system import Pipeline, stop_all, wait_delivered

FACTS = 3_000
OUTAGE_S = 10.0


async def test_a_broker_outage_mid_run_loses_nothing_and_nobody_dies(
    tmp_path: Path, receiver: Receiver
) -> None:
    facts = generated_facts(FACTS, instances=100, seed=41)
    expected = expected_events(facts)
    with proxied_broker(tmp_path / "broker.log") as (bootstrap, proxy):
        pipeline = Pipeline.on(bootstrap, tmp_path, receiver)
        pipeline.sink.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="10")
        await pipeline.create_topics()
        # A slow endpoint: the sink has batches in flight and offsets to commit at the cut.
        receiver.fail_when(lambda body, headers: Answer(200, delay=0.1))
        with pipeline.stream_worker("stream") as stream, pipeline.sink_worker("sink") as sink:
            await produce(bootstrap, pipeline.stream.facts, facts[: FACTS // 2])
            await receiver.wait_for_events(len(expected) // 10, within=60)
            assert receiver.unique_event_count >= len(expected) // 10, pipeline.logs()
            # Cut as soon as the second half is on the broker: the stream is reducing it.
            await produce(bootstrap, pipeline.stream.facts, facts[FACTS // 2 :])
            connections = proxy.accepted
            proxy.cut()
            delivered_at_cut = receiver.unique_event_count
            await asyncio.sleep(OUTAGE_S)
            during = {"stream": stream.poll(), "sink": sink.poll()}
            proxy.restore()
            verdict = await wait_delivered(receiver, expected, within=90)
            after = {"stream": stream.poll(), "sink": sink.poll()}
            receiver.fail_when(None)
            exits = await stop_all(stream, sink)
        repeats = await pipeline.assert_delivered(receiver, verdict, expected, "broker-outage")
        assert during == after == {"stream": None, "sink": None}, pipeline.logs()
        assert set(exits.values()) == {0}, pipeline.logs()
        assert proxy.accepted > connections, "nobody reconnected after the outage"
    print(
        f"broker outage {OUTAGE_S:.0f} s: {delivered_at_cut} of {len(expected)} events "
        f"delivered at the cut; {verdict.summary()}; {repeats} stream repeats"
    )
