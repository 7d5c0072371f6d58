"""``replay`` and ``offsets`` as users run them: processes against a real broker."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from codex_analytics.cli.main import main
from codex_analytics.devtools.verify import captured_events, compare
from codex_analytics.runtime.kafka import ensure_topics
from tests.cli import run_cli, run_cli_on

from .stream_helpers import expected_events, generated_facts, produce

pytestmark = pytest.mark.integration


def _publish(bootstrap: str, topic: str, facts: list[bytes]) -> None:
    async def go() -> None:
        await ensure_topics(bootstrap, {topic: 4})
        await produce(bootstrap, topic, facts)

    asyncio.run(go())


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    async def go() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(4)]
            return {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()

    return asyncio.run(go())


def test_replay_is_byte_identical_equals_reduce_and_leaves_groups_alone(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group = unique_name("replay.facts"), unique_name("live-group")
    facts = generated_facts(6000, instances=40)
    _publish(kafka_bootstrap, topic, facts)
    # A live group's position, committed before the replays.
    reset = run_cli_on(kafka_bootstrap, topic, "offsets", "reset", "--group", group, "--topic", topic,
                       "--to", "0:7,1:3", "--execute")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    before = _committed(kafka_bootstrap, group, topic)
    assert before[0] == 7
    assert before[1] == 3

    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    for out in (first, second):
        result = run_cli_on(
            kafka_bootstrap, topic, "replay", "--from", "earliest", "--capture", str(out)
        )
        assert result.returncode == 0, result.stderr
        assert "6,000 facts" in result.stderr
    assert first.read_bytes() == second.read_bytes()  # byte-identical
    verdict = compare(captured_events(first), expected_events(facts))
    assert verdict.passed, verdict.detail
    assert first.stat().st_mode & 0o777 == 0o600
    assert _committed(kafka_bootstrap, group, topic) == before  # not disturbed

    # Into a fresh events topic: the same events, as event records; never into a used one.
    events_topic = unique_name("replay.events")
    result = run_cli_on(
        kafka_bootstrap, topic, "replay", "--from", "earliest", "--to-topic", events_topic
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"{len(expected_events(facts)):,} events in {len(expected_events(facts)):,} records"
        in result.stderr
    )
    again = run_cli_on(
        kafka_bootstrap, topic, "replay", "--from", "earliest", "--to-topic", events_topic
    )
    assert again.returncode == 2
    assert "already holds" in again.stderr


def test_replay_from_offsets_and_from_a_time(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_name("replay.facts")
    early = generated_facts(1500, instances=10, seed=1)
    _publish(kafka_bootstrap, topic, early)
    time.sleep(0.05)
    boundary_ms = int(time.time() * 1000)
    time.sleep(0.05)
    late = generated_facts(900, instances=10, seed=2)  # other instances: no earlier state
    _publish(kafka_bootstrap, topic, late)

    out = tmp_path / "late.jsonl"
    result = run_cli_on(
        kafka_bootstrap, topic, "replay", "--from", str(boundary_ms), "--capture", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "900 records (900 facts)" in result.stderr
    assert compare(captured_events(out), expected_events(late)).passed

    result = run_cli_on(
        kafka_bootstrap, topic, "replay", "--from", "0:99999,1:0", "--capture", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "partitions 0:" in result.stderr  # partition 0 replayed as empty (clamped)
    bad = run_cli_on(kafka_bootstrap, topic, "replay", "--from", "yesterday", "--capture", str(out))
    assert bad.returncode == 2
    assert "expected 'earliest'" in bad.stderr


def test_offsets_show_dry_run_execute_and_refuse_a_live_group(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic, group = unique_name("offsets.facts"), unique_name("group")
    facts = generated_facts(800, instances=8)
    _publish(kafka_bootstrap, topic, facts)
    base = ("offsets", "reset", "--group", group, "--topic", topic)

    dry = run_cli_on(kafka_bootstrap, topic, *base, "--to", "latest")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    assert set(_committed(kafka_bootstrap, group, topic).values()) == {None}

    done = run_cli_on(kafka_bootstrap, topic, *base, "--to", "latest", "--execute")
    assert done.returncode == 0, done.stderr
    shown = run_cli_on(
        kafka_bootstrap, topic, "offsets", "show", "--group", group, "--topic", topic
    )
    assert shown.returncode == 0, shown.stderr
    assert "total lag 0" in shown.stdout
    committed = _committed(kafka_bootstrap, group, topic)
    assert sum(v or 0 for v in committed.values()) == len(facts)

    async def hold_membership() -> subprocess.CompletedProcess[str]:
        member = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            session_timeout_ms=10_000,
            enable_auto_commit=False,
        )
        await member.start()
        try:
            await member.getmany(timeout_ms=6000)  # until it has joined
            return await asyncio.to_thread(
                run_cli_on, kafka_bootstrap, topic, *base, "--to", "earliest", "--execute"
            )
        finally:
            await member.stop()

    refused = asyncio.run(hold_membership())
    assert refused.returncode == 1
    assert "live member" in refused.stderr
    assert _committed(kafka_bootstrap, group, topic) == committed


def test_an_unreachable_broker_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    from codex_analytics.devtools.broker import free_port

    dead = f"127.0.0.1:{free_port('127.0.0.1')}"
    out = tmp_path / "never.jsonl"
    # No wait for the broker to come (ANALYTICS_KAFKA_WAIT_S: tests/integration/test_startup.py).
    env = {"KAFKA_BOOTSTRAP_SERVERS": dead, "ANALYTICS_KAFKA_WAIT_S": "0"}
    result = run_cli("replay", "--from", "earliest", "--capture", str(out), env=env)
    assert result.returncode == 1
    assert f"Kafka at {dead} not reachable" in result.stderr
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    shown = run_cli("offsets", "show", env=env)
    assert shown.returncode == 1
    assert f"offsets: Kafka at {dead} not reachable" in shown.stderr
    assert shown.stderr.endswith(f"{dead}: unreachable (connection refused)\n")


async def test_replay_of_a_missing_topic_is_a_clear_error(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    from codex_analytics.ops.replay import CaptureOutput, ReplayError, StartPoint, replay
    from streams.settings import StreamSettings

    output = CaptureOutput(str(tmp_path / "out.jsonl"))
    missing = unique_name("missing")
    with pytest.raises(ReplayError, match=f"topic {missing} does not exist"):
        await replay(kafka_bootstrap, missing, StartPoint(), output, StreamSettings.from_env({}))


def test_offsets_shift_by_duration_export_and_reimport_refuse_unknown_partitions(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (the command's run(), as the console script calls it)."""
    topic, group = unique_name("offsets.facts"), unique_name("group")
    _publish(kafka_bootstrap, topic, generated_facts(400, instances=8))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    target = ("--group", group, "--topic", topic)

    def offsets(*args: str) -> tuple[int, str, str]:
        status = main(["offsets", *args])
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        return status, out.out, out.err

    status, shown, _ = offsets("show", *target)
    assert status == 0
    assert "no committed offset" in shown
    assert "total lag" not in shown  # nothing committed is not "no lag"

    status, _, err = offsets("reset", *target, "--to", "0:10,9:5,7:1", "--execute")
    assert status == 2
    assert f"topic {topic} has no partition 7, 9" in err
    assert set(_committed(kafka_bootstrap, group, topic).values()) == {None}

    assert offsets("reset", *target, "--to", "latest", "--execute")[0] == 0
    ends = _committed(kafka_bootstrap, group, topic)
    assert offsets("reset", *target, "--shift-by", "-5", "--execute")[0] == 0
    shifted = _committed(kafka_bootstrap, group, topic)
    assert shifted == {p: max(0, (end or 0) - 5) for p, end in ends.items()}
    status, plan, _ = offsets("reset", *target, "--shift-by", "+1000")
    assert status == 0
    assert all(f"-> {end}" in plan for end in ends.values())  # clamped to the end
    assert _committed(kafka_bootstrap, group, topic) == shifted  # a dry run

    saved = tmp_path / "saved.csv"
    assert offsets("show", *target, "--export", str(saved))[0] == 0
    assert saved.read_text().splitlines() == [
        "topic,partition,offset",
        *(f"{topic},{p},{o}" for p, o in sorted(shifted.items())),
    ]
    planned = tmp_path / "planned.csv"
    status, plan, _ = offsets(
        "reset", *target, "--by-duration", "1h", "--export", str(planned), "--execute"
    )
    assert status == 0, plan  # every record is younger than an hour: back to the start
    assert set(_committed(kafka_bootstrap, group, topic).values()) == {0}
    assert planned.read_text().splitlines()[1:] == [f"{topic},{p},0" for p in range(4)]

    assert offsets("reset", *target, "--from-file", str(saved), "--execute")[0] == 0
    assert _committed(kafka_bootstrap, group, topic) == shifted  # restored

    unknown = tmp_path / "unknown.csv"
    unknown.write_text(f"{topic},1,3\n{topic},12,4\n")
    status, _, err = offsets("reset", *target, "--from-file", str(unknown), "--execute")
    assert status == 2
    assert "has no partition 12" in err
    assert _committed(kafka_bootstrap, group, topic) == shifted
    status, _, err = offsets("reset", *target, "--by-duration", "soon")
    assert status == 2
    assert "'soon' is not a duration" in err
