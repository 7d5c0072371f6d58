"""The client library against a real broker: every track_* call lands as its envelope,
a full queue drops without blocking, close() delivers what is queued."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from codex_analytics.contract import AuthRoute, decode_fact
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.fact_builder import FactBuilder
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers import AnalyticsClient, ClientSettings, ProducerIdentity
from tests.cli import run_cli_on
from tests.factories import app, skill, tracking
from tests.producer_j_calls import PROFILE_ONLY, call_for, vector_facts

from .kafka_helpers import create_topic


def all_calls(
    b: FactBuilder,
) -> list[tuple[str, Callable[[AnalyticsClient], bool], dict[str, Any]]]:
    """(method, call, expected fact) for each of the 19 track_* calls; the expected fact
    comes from the shared fact builder, the call passes the same parts to the client."""

    def p(fact: dict[str, Any]) -> dict[str, Any]:
        return fact

    init = b.initialize(7, capabilities={"experimentalApi": True})
    req = b.turn_start_request(7, 1, "thread-1", images=2)
    resp = b.thread_response(7, "thread-1")
    err = b.error_response(7, 2, {"turn_steer": "no_active_turn"})
    note = b.turn_completed("turn-1", "thread-1")
    sub = b.subagent_thread_started("thread-sub", subagent_source="review")
    review = b.guardian_review()
    compaction = b.compaction()
    config = b.resolved_config()
    usage = b.token_usage()
    skills = b.skill_invoked(skill("doc"), skill("lint", scope="repo"))
    mentions = b.app_mentioned(app("drive"), app(None, None, None))
    used = b.app_used("calendar")
    hook = b.hook_run("blocked")
    plugin_used = b.plugin_used("linear@chatgpt-global", remote_plugin_id="plugins~Plugin_linear")
    states = {
        s: b.plugin_state(s, "sample@test")
        for s in ("installed", "uninstalled", "enabled", "disabled")
    }
    t = tracking()
    return [
        (
            "initialize",
            lambda c: c.track_initialize(
                7,
                init["payload"]["params"],
                "codex-tui",
                "stdio",
                runtime=init["payload"]["runtime"],
            ),
            p(init),
        ),
        ("request", lambda c: c.track_request(7, 1, "turn/start", req["payload"]["params"]), req),
        (
            "response",
            lambda c: c.track_response(7, 100, "thread/start", resp["payload"]["result"]),
            resp,
        ),
        (
            "error_response",
            lambda c: c.track_error_response(
                7, 2, err["payload"]["error"], {"turn_steer": "no_active_turn"}
            ),
            err,
        ),
        (
            "notification",
            lambda c: c.track_notification("turn/completed", note["payload"]["params"]),
            note,
        ),
        ("subagent", lambda c: c.track_subagent_thread_started(sub["payload"]), sub),
        ("guardian", lambda c: c.track_guardian_review(review["payload"]), review),
        ("compaction", lambda c: c.track_compaction(compaction["payload"]), compaction),
        ("config", lambda c: c.track_turn_resolved_config(config["payload"]), config),
        ("usage", lambda c: c.track_turn_token_usage(usage["payload"]), usage),
        (
            "skills",
            lambda c: c.track_skill_invocations(t, skills["payload"]["invocations"]),
            skills,
        ),
        ("mentions", lambda c: c.track_app_mentioned(t, mentions["payload"]["mentions"]), mentions),
        ("app_used", lambda c: c.track_app_used(t, used["payload"]["app"]), used),
        ("hook", lambda c: c.track_hook_run(t, hook["payload"]["hook"]), hook),
        (
            "plugin_used",
            lambda c: c.track_plugin_used(t, plugin_used["payload"]["plugin"]),
            plugin_used,
        ),
        (
            "installed",
            lambda c: c.track_plugin_installed(states["installed"]["payload"]["plugin"]),
            states["installed"],
        ),
        (
            "uninstalled",
            lambda c: c.track_plugin_uninstalled(states["uninstalled"]["payload"]["plugin"]),
            states["uninstalled"],
        ),
        (
            "enabled",
            lambda c: c.track_plugin_enabled(states["enabled"]["payload"]["plugin"]),
            states["enabled"],
        ),
        (
            "disabled",
            lambda c: c.track_plugin_disabled(states["disabled"]["payload"]["plugin"]),
            states["disabled"],
        ),
    ]


async def test_every_track_call_lands_on_the_broker_as_its_envelope(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic, partitions=4)
    identity = ProducerIdentity(
        instance_id=unique_name("host/pid-1/boot"),
        originator="codex_vscode",
        auth=AuthRoute("chatgpt", "acct-1", True),
    )
    calls = all_calls(FactBuilder())
    assert len(calls) == 19
    before_ms = time.time_ns() // 1_000_000
    async with AnalyticsClient(
        ClientSettings(kafka=kafka_bootstrap, topic=topic, contract="2026-06"), identity=identity
    ) as client:
        assert all(call(client) for _, call, _ in calls)
        assert await client.flush(timeout=20)
    after_ms = time.time_ns() // 1_000_000
    assert client.stats.published == 19

    records = await read_from_start(kafka_bootstrap, topic, want=19, within=20, settle=0.5)
    assert len(records) == 19
    assert {r.key for r in records} == {identity.instance_id.encode()}
    assert len({r.partition for r in records}) == 1
    facts = sorted((orjson.loads(r.value) for r in records), key=lambda f: f["seq"])
    assert [f["seq"] for f in facts] == list(range(1, 20))
    for (name, _, expected), fact in zip(calls, facts, strict=True):
        decode_fact(orjson.dumps(fact))  # every envelope satisfies the contract
        assert fact["kind"] == expected["kind"], name
        assert fact["connection_id"] == expected["connection_id"], name
        if name == "skills":  # resolved on this machine: the paths do not exist here
            for invocation in fact["payload"]["invocations"]:
                assert invocation["resolved"]["repo_root"] is None
            continue
        assert fact["payload"] == expected["payload"], name
        assert list(fact) == list(expected), name  # key order of the envelope
        assert before_ms <= fact["observed_at_ms"] <= after_ms
        assert fact["source"] == {
            "instance_id": identity.instance_id,
            "originator": "codex_vscode",
            "runtime": orjson.loads(orjson.dumps(fact["source"]["runtime"])),
            "auth": {"kind": "chatgpt", "account_id": "acct-1", "is_fedramp": True},
        }
    assert len({f["fact_id"] for f in facts}) == 19


async def test_a_2026_08_client_puts_facts_on_the_topic_that_decode_as_2026_08(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic, partitions=2)
    examples = vector_facts()
    calls = [call_for(f) for f in examples] + [call for _, call, _, _ in PROFILE_ONLY]
    kinds = [f["kind"] for f in examples] + [kind for kind, *_ in PROFILE_ONLY] + ["flush"]
    identity = ProducerIdentity(instance_id=unique_name("host/pid-1/boot-j"))
    async with AnalyticsClient(
        ClientSettings(kafka=kafka_bootstrap, topic=topic), identity=identity
    ) as client:
        assert client.contract == "2026-08"
        assert all(call(client) for call in calls)
        assert await client.flush(timeout=20)
    records = await read_from_start(kafka_bootstrap, topic, want=len(kinds), within=20, settle=0.5)
    decoded = sorted((decode_fact(r.value) for r in records), key=lambda f: f.seq)
    assert [f.kind for f in decoded] == kinds
    assert {f.contract for f in decoded} == {"2026-08"}
    assert {r.key for r in records} == {identity.instance_id.encode()}


async def test_a_full_queue_drops_without_blocking_and_close_delivers_the_rest(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic)
    client = AnalyticsClient(ClientSettings(kafka=kafka_bootstrap, topic=topic, contract="2026-06"))
    await client.start()
    # A tight loop never yields, so the sender cannot run: the queue fills at 256.
    slowest = 0.0
    started = time.perf_counter()
    for i in range(5000):
        t0 = time.perf_counter()
        client.track_notification("turn/started", {"threadId": "t", "turn": {"id": f"turn-{i}"}})
        slowest = max(slowest, time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    stats = client.stats
    assert stats.queued == 256
    assert stats.dropped_queue_full == 4744
    # Never blocked on the network: the broker is a TCP round trip away (>= 100 us).
    assert slowest < 0.05, slowest
    assert elapsed / 5000 < 0.001, elapsed
    assert await client.close(timeout=20)
    records = await read_from_start(kafka_bootstrap, topic, want=256, within=20, settle=0.5)
    seqs = sorted(orjson.loads(r.value)["seq"] for r in records)
    assert seqs == list(range(1, 257))
    assert client.stats.published == 256


async def test_broker_away_at_start_is_retried_in_the_background(
    unique_name: Callable[[str], str],
) -> None:
    from codex_analytics.devtools.broker import EmbeddedBroker, free_port

    port = free_port("127.0.0.1")
    client = AnalyticsClient(
        ClientSettings(kafka=f"127.0.0.1:{port}", topic="analytics.facts", contract="2026-06")
    )
    await client.start()
    for i in range(3):
        assert client.track_notification("turn/started", {"i": i})
    await asyncio.sleep(1.0)  # nothing listens: the sender retries, the host goes on
    assert client.stats.published == 0
    assert client.stats.publish_retries >= 1
    with EmbeddedBroker(port=port) as broker:
        from codex_analytics.runtime.kafka import ensure_topics

        await ensure_topics(broker.bootstrap_servers, {"analytics.facts": 1})
        assert await client.close(timeout=30)
        records = await read_from_start(
            broker.bootstrap_servers, "analytics.facts", want=3, within=20, settle=0.3
        )
    assert [orjson.loads(r.value)["payload"]["params"]["i"] for r in records] == [0, 1, 2]


def test_produce_command_publishes_valid_lines_and_reports_bad_ones(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_name("facts")
    good = [
        orjson.dumps(f) for f in SessionGenerator(GeneratorConfig(instances=7, seed=3)).facts(300)
    ]
    path = tmp_path / "facts.jsonl"
    path.write_bytes(b"\n".join([*good[:100], b'{"kind":"x"}', *good[100:], b"oops"]) + b"\n")
    done = run_cli_on(kafka_bootstrap, topic, "produce", str(path))
    assert done.returncode == 1, done.stderr
    assert "line 101: missing_key at envelope_version" in done.stderr
    assert "line 302: not_json" in done.stderr
    assert "published 300 facts" in done.stderr
    records = asyncio.run(read_from_start(kafka_bootstrap, topic, want=300, within=20, settle=0.5))
    assert sorted(r.value for r in records) == sorted(good)
    assert (
        run_cli_on(kafka_bootstrap, topic, "produce", str(tmp_path / "missing.jsonl")).returncode
        == 2
    )


def test_generate_to_kafka_publishes_the_generator_output_at_a_limited_rate(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    args = ["generate", "--instances", "9", "--facts", "600", "--seed", "4"]
    started = time.monotonic()
    done = run_cli_on(kafka_bootstrap, topic, *args, "--to-kafka", "--rate", "1500", "--pack", "50")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed >= 0.35  # 600 facts at 1500/s: at least 0.4 s of pacing
    # Packed records: fewer than 600; read until the topic has been quiet for 1 s.
    records = asyncio.run(read_from_start(kafka_bootstrap, topic, want=1, within=20, settle=1.0))
    unpacked: list[bytes] = []
    for record in records:
        doc = orjson.loads(record.value)
        unpacked.extend(orjson.dumps(f) for f in (doc if isinstance(doc, list) else [doc]))
    assert len(records) < 600  # packed
    expected = run_cli_on(kafka_bootstrap, topic, *args).stdout.encode().splitlines()
    assert sorted(unpacked) == sorted(expected)
