"""kill -9 of one of two stream workers and one of two sink workers mid-run: nothing is
lost, and whatever is sent twice is an exact repeat."""

from __future__ import annotations

import signal
from pathlib import Path

from codex_analytics.devtools.receiver import Answer, Receiver
from tests.integration.stream_helpers import expected_events, generated_facts, produce

from .system import Pipeline, stop_all, wait_delivered

FACTS = 4_000


async def test_kill_9_of_a_stream_and_a_sink_worker_loses_nothing(
    fresh_broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = Pipeline.on(fresh_broker, tmp_path, receiver)
    pipeline.sink.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="20")
    facts = generated_facts(FACTS, instances=120, seed=21)
    expected = expected_events(facts)
    # A slow endpoint, so that batches are in flight (received, never acknowledged to
    # the sink) when it dies.
    receiver.fail_when(lambda body, headers: Answer(200, delay=0.05))
    await pipeline.create_topics()
    with (
        pipeline.stream_worker("stream-1") as stream_1,
        pipeline.stream_worker("stream-2") as stream_2,
        pipeline.sink_worker("sink-1") as sink_1,
        pipeline.sink_worker("sink-2") as sink_2,
    ):
        await produce(fresh_broker, pipeline.stream.facts, facts[: FACTS // 2])
        await receiver.wait_for_events(len(expected) // 10, within=60)
        assert receiver.unique_event_count >= len(expected) // 10, pipeline.logs()
        # Kill them as soon as the second half is on the broker: the stream workers are
        # reducing it, the sinks have batches in flight.
        await produce(fresh_broker, pipeline.stream.facts, facts[FACTS // 2 :])
        for victim in (stream_1, sink_1):
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        delivered_at_kill = receiver.unique_event_count
        verdict = await wait_delivered(receiver, expected, within=90)
        survivors = {"stream-2": stream_2.poll(), "sink-2": sink_2.poll()}
        receiver.fail_when(None)
        exits = await stop_all(stream_2, sink_2)
    # The stream's own repeats (after its kill) are byte-identical to the first copy.
    stream_repeats = await pipeline.assert_delivered(receiver, verdict, expected, "kill9")
    assert survivors == {"stream-2": None, "sink-2": None}, pipeline.logs()
    assert set(exits.values()) == {0}, pipeline.logs()
    print(
        f"kill -9: {delivered_at_kill} of {len(expected)} events delivered at the kill; "
        f"{verdict.summary()}; {stream_repeats} repeats on the events topic"
    )
