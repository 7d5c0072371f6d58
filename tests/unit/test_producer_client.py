"""The client library's gates, queue and sender (in-memory transport; the real broker is
in tests/integration/test_producers.py)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.contract.facts import AppInvocation, TrackingContext
from producers import (
    QUEUE_FULL_WARNING,
    AnalyticsClient,
    ClientSettings,
    DeliveryFailure,
    ProducerIdentity,
    SyncAnalyticsClient,
)
from producers.client.gates import TurnKeyDedupe
from producers.client.skills import resolve_skill_path
from producers.publishing.records import fact_records
from tests.factories import app, plugin, tracking
from tests.producer_helpers import MemoryTransport


def make_client(**settings: Any) -> tuple[AnalyticsClient, MemoryTransport, list[DeliveryFailure]]:
    transport = MemoryTransport()
    failures: list[DeliveryFailure] = []
    settings.setdefault("contract", "2026-06")  # these tests compare Profile S facts
    client = AnalyticsClient(
        ClientSettings(**settings),
        identity=ProducerIdentity(instance_id="host/pid-1/boot-a"),
        transport=transport,
        on_delivery_error=failures.append,
    )
    return client, transport, failures


async def test_facts_carry_identity_increasing_seq_and_decode() -> None:
    client, transport, _ = make_client()
    async with client:
        assert client.track_turn_token_usage(
            {
                "turn_id": "t",
                "thread_id": "th",
                "token_usage": dict.fromkeys(
                    [
                        "input_tokens",
                        "cached_input_tokens",
                        "output_tokens",
                        "reasoning_output_tokens",
                        "total_tokens",
                    ],
                    1,
                ),
            }
        )
        assert client.track_app_used(
            TrackingContext("gpt-5", "th", "t"), AppInvocation("drive", "Drive", "explicit")
        )
        assert client.track_hook_run(
            tracking(), {"event_name": "Stop", "hook_source": "user", "status": "completed"}
        )
        assert await client.flush()
    facts = transport.facts()
    assert [f["seq"] for f in facts] == [1, 2, 3]
    assert {f["source"]["instance_id"] for f in facts} == {"host/pid-1/boot-a"}
    assert len({f["fact_id"] for f in facts}) == 3
    assert all(key == b"host/pid-1/boot-a" for key, _ in transport.records)
    decoded = [decode_fact(value) for _, value in transport.records]
    assert [d.kind for d in decoded] == ["turn_token_usage", "app_used", "hook_run"]
    assert facts[1]["payload"] == {
        "tracking": {"model_slug": "gpt-5", "thread_id": "th", "turn_id": "t"},
        "app": {"connector_id": "drive", "app_name": "Drive", "invocation_type": "explicit"},
    }
    assert transport.closed


async def test_disabled_client_publishes_nothing_and_never_touches_the_dedupe() -> None:
    client, transport, _ = make_client(enabled=False)
    async with client:
        assert not client.track_app_used(tracking(), app("drive"))
        assert not client.track_notification("turn/started", {})
    assert transport.records == []
    assert transport.calls == 0
    assert len(client._tracker.app_used) == 0
    assert client.stats.queued == 0


async def test_enabled_none_and_true_both_publish() -> None:
    for enabled in (None, True):
        client, transport, _ = make_client(enabled=enabled)
        async with client:
            client.track_notification("turn/started", {"threadId": "x", "turn": {"id": "t"}})
        assert len(transport.records) == 1


async def test_empty_lists_and_irrelevant_methods_are_gated() -> None:
    client, transport, _ = make_client()
    async with client:
        assert not client.track_skill_invocations(tracking(), [])
        assert not client.track_app_mentioned(tracking(), [])
        assert not client.track_request(7, 1, "thread/list", {})
        assert not client.track_response(7, 1, "thread/list", {})
        assert not client.track_notification("thread/tokenUsage/updated", {})
        assert client.track_request(7, 2, "turn/start", {"threadId": "t", "input": []})
        assert client.track_response(7, 3, "thread/fork", {"thread": {}})
    assert client.stats.gated == 5
    assert [f["kind"] for f in transport.facts()] == ["client_request", "client_response"]


async def test_forward_all_is_the_seed_client() -> None:
    client, transport, _ = make_client(forward_all_protocol_messages=True)
    async with client:
        assert client.track_request(7, 1, "thread/list", {})
        assert client.track_notification("thread/tokenUsage/updated", {})
    assert len(transport.facts()) == 2


async def test_app_and_plugin_used_dedupe_per_turn_and_key() -> None:
    client, transport, _ = make_client()
    async with client:
        t1, t2 = tracking(turn_id="turn-1"), tracking(turn_id="turn-2")
        assert [
            client.track_app_used(t1, app("drive")),
            client.track_app_used(t1, app("drive")),
            client.track_app_used(t2, app("drive")),
        ] == [True, False, True]
        # No connector id: always passes, never recorded.
        assert client.track_app_used(t1, app(None))
        assert client.track_app_used(t1, app(None))
        # Plugin key is the local key, even when a remote id is set.
        assert client.track_plugin_used(t1, plugin("linear@chatgpt-global", "plugins~A"))
        assert not client.track_plugin_used(t1, plugin("linear@chatgpt-global", "plugins~B"))
        assert client.track_plugin_used(t2, plugin("linear@chatgpt-global"))
    assert client.stats.deduplicated == 2
    assert len(transport.facts()) == 6


def test_dedupe_set_clears_completely_at_4096() -> None:
    dedupe = TurnKeyDedupe()
    for i in range(4095):
        assert dedupe.admit("turn", f"k{i}")
    assert not dedupe.admit("turn", "k0")  # 4095 entries: still remembered
    assert dedupe.admit("turn", "k4095")  # the 4096th entry
    assert len(dedupe) == 4096
    assert dedupe.admit("turn", "k0")  # the check clears the full set first
    assert len(dedupe) == 1
    assert dedupe.admit("turn", "k1")  # forgotten by the clear


async def test_full_queue_drops_with_one_warning_and_never_blocks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, transport, _ = make_client()
    transport.gate = asyncio.Event()
    caplog.set_level(logging.WARNING, "producers.client.analytics_client")
    async with client:
        client.track_notification("turn/started", {})
        await asyncio.sleep(0.01)  # the sender takes it and blocks on the transport
        results = [client.track_notification("turn/started", {}) for _ in range(300)]
        assert results.count(True) == 256
        assert results.count(False) == 44
        assert client.stats.dropped_queue_full == 44
        transport.gate.set()
    warnings = [r for r in caplog.records if r.getMessage() == QUEUE_FULL_WARNING]
    assert len(warnings) == 1  # rate limited, not one per drop
    assert [f["seq"] for f in transport.facts()] == list(range(1, 258))


async def test_retryable_failures_are_retried_in_order() -> None:
    client, transport, failures = make_client()
    transport.fail_retryable = 3
    async with client:
        for i in range(5):
            client.track_notification("turn/started", {"i": i})
        assert await client.flush()
    assert failures == []
    assert client.stats.publish_retries == 3
    assert client.stats.published == 5
    assert [f["payload"]["params"]["i"] for f in transport.facts()] == [0, 1, 2, 3, 4]


async def test_permanent_failure_and_exhausted_retries_reach_the_callback() -> None:
    client, transport, failures = make_client(delivery_timeout_s=0.2)
    transport.fail_permanent = True
    async with client:
        client.track_notification("turn/started", {})
        await client.flush()
        transport.fail_permanent = False
        transport.fail_retryable = 10**6
        client.track_notification("turn/completed", {})
        await client.flush()
    assert [f.reason for f in failures] == ["rejected", "retries_exhausted"]
    assert [len(f.facts) for f in failures] == [1, 1]
    assert "facts=1" in repr(failures[0])
    assert "turn/started" not in repr(failures[0])
    assert client.stats.failed == 2


async def test_a_refused_record_fails_its_own_facts_only() -> None:
    client, transport, failures = make_client()
    transport.refuse_containing = b"refuse-me"
    async with client:
        for name in ("a", "refuse-me", "b"):
            client.track_notification("turn/started", {"name": name})
    assert [(f.reason, len(f.facts)) for f in failures] == [("rejected", 1)]
    assert failures[0].facts[0]["payload"]["params"]["name"] == "refuse-me"
    assert [f["payload"]["params"]["name"] for f in transport.facts()] == ["a", "b"]
    assert (client.stats.published, client.stats.failed) == (2, 1)


async def test_close_reports_what_it_could_not_deliver() -> None:
    client, transport, failures = make_client()
    transport.fail_retryable = 10**6
    await client.start()
    for _ in range(3):
        client.track_notification("turn/started", {})
    assert not await client.close(timeout=0.3)
    assert sum(len(f.facts) for f in failures) == 3
    assert {f.reason for f in failures} <= {"closed", "retries_exhausted"}
    assert not client.track_notification("turn/started", {})
    assert client.stats.dropped_closed == 1


async def test_unencodable_payload_is_reported_and_the_rest_still_sent() -> None:
    client, transport, failures = make_client()
    async with client:
        client.track_notification("turn/started", {"bad": {1, 2}})
        client.track_notification("turn/completed", {})
    assert [f.reason for f in failures] == ["unencodable"]
    assert [f["payload"]["method"] for f in transport.facts()] == ["turn/completed"]


async def test_packs_keep_instance_order() -> None:
    client, transport, _ = make_client(max_facts_per_record=100)
    transport.gate = asyncio.Event()
    async with client:
        client.track_notification("turn/started", {})
        await asyncio.sleep(0.01)
        for _ in range(10):
            client.track_notification("turn/started", {})
        transport.gate.set()
    assert len(transport.records) == 2
    assert [f["seq"] for f in transport.facts()] == list(range(1, 12))


def test_fact_records_split_by_instance_count_and_bytes() -> None:
    facts = [("a", b"{1}"), ("a", b"{2}"), ("b", b"{3}"), ("a", b"{4}")]
    assert fact_records(facts) == [(b"a", b"{1}"), (b"a", b"{2}"), (b"b", b"{3}"), (b"a", b"{4}")]
    # Packs gather each instance's facts in order; instances may interleave freely.
    assert fact_records(facts, max_facts_per_record=8) == [
        (b"a", b"[{1},{2},{4}]"),
        (b"b", b"{3}"),
    ]
    assert [v for _, v in fact_records(facts, max_facts_per_record=2)] == [
        b"[{1},{2}]",
        b"{4}",
        b"{3}",
    ]
    tens = [("a", b"x" * 10)] * 5
    assert len(fact_records(tens, max_facts_per_record=9, max_record_bytes=25)) == 3
    assert (
        len(fact_records([("a", b"x" * 100)] * 2, max_facts_per_record=9, max_record_bytes=25)) == 2
    )


def test_sync_client_from_many_threads() -> None:
    transport = MemoryTransport()
    with SyncAnalyticsClient(transport=transport, contract="2026-06") as client:

        def work() -> None:
            for _ in range(50):
                client.track_notification("turn/started", {})

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(timeout=5)
    assert sorted(f["seq"] for f in transport.facts()) == list(range(1, 201))
    assert client.stats.published == 200
    assert not client.track_notification("turn/started", {})


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository (made by git itself) with an origin remote."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "https://github.com/o/r.git"],
        check=True,
    )
    return repo


async def test_skill_path_is_resolved_on_the_producer(tmp_path: Path, git_repo: Path) -> None:
    repo = git_repo
    skill = repo / "skills" / "doc" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("# doc")
    link = tmp_path / "link"
    link.symlink_to(repo)
    client, transport, _ = make_client()
    invocation = {
        "skill_name": "doc",
        "skill_scope": "repo",
        "skill_path": str(link / "skills" / "doc" / "SKILL.md"),
        "invocation_type": "explicit",
    }
    missing = dict(invocation, skill_path="/nonexistent/SKILL.md")
    async with client:
        client.track_skill_invocations(tracking(), [invocation, missing])
    resolved = [i["resolved"] for i in transport.facts()[0]["payload"]["invocations"]]
    assert resolved == [
        {
            "canonical_skill_path": str(skill.resolve()),
            "repo_root": str(repo.resolve()),
            "repo_url": "https://github.com/o/r.git",
        },
        {"canonical_skill_path": "/nonexistent/SKILL.md", "repo_root": None, "repo_url": None},
    ]
    decode_fact(transport.records[0][1])
    assert resolve_skill_path(str(tmp_path / "nowhere.md"))["repo_root"] is None


async def test_track_fact_replays_every_generated_kind_through_the_client() -> None:
    from codex_analytics.contract import FACT_KINDS
    from codex_analytics.simulator.drive import track_fact
    from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

    source = list(
        SessionGenerator(GeneratorConfig(instances=1, seed=5, duplicate_rate=0)).facts(3000)
    )
    client, transport, _ = make_client(queue_capacity=10_000, forward_all_protocol_messages=True)
    client._tracker.app_used = TurnKeyDedupe(clear_at=10**9)
    async with client:
        queued = [track_fact(client, fact) for fact in source]
    out = transport.facts()
    assert {f["kind"] for f in out} == set(FACT_KINDS)
    # Same kinds and payloads in the same order, minus the client's own per-turn dedupe.
    kept = [f for f, q in zip(source, queued, strict=True) if q]
    assert [(f["kind"], f["payload"]) for f in out] == [(f["kind"], f["payload"]) for f in kept]
    assert len(kept) == len(source) - client.stats.deduplicated


def test_an_identity_the_stream_would_refuse_fails_at_construction() -> None:
    with pytest.raises(ValueError, match=r"source\.instance_id: too_long: 600000 characters") as e:
        ProducerIdentity(instance_id="i" * 600_000)
    assert len(str(e.value)) < 200
    with pytest.raises(ValueError, match=r"source\.instance_id: invalid_value"):
        ProducerIdentity(instance_id="")
    with pytest.raises(ValueError, match=r"source\.originator: too_long"):
        ProducerIdentity(originator="o" * 5000)


async def test_a_fact_over_the_contract_limits_is_refused_and_reported_not_sent() -> None:
    client, transport, failures = make_client()
    async with client:
        assert client.track_initialize(
            7, {"clientInfo": {"name": "n" * 400_000, "version": "1"}}, "tui"
        )
        assert client.track_hook_run(
            tracking(), {"event_name": "Stop", "hook_source": "user", "status": "completed"}
        )
        assert not await client.flush()  # one of them failed
    (failure,) = failures
    assert failure.reason == "over_limit"
    assert failure.error == (
        "payload.params.clientInfo.name: too_long: 400000 characters exceeds the limit of 4096"
    )
    assert [f["kind"] for f in failure.facts] == ["initialize"]
    assert [f["kind"] for f in transport.facts()] == ["hook_run"]
    assert (client.stats.failed, client.stats.published) == (1, 1)


async def test_an_otherwise_malformed_fact_is_still_sent_for_the_stream_to_dead_letter() -> None:
    client, transport, failures = make_client()
    async with client:
        client.track_notification("turn/started", {"turn": "not an object"})
        assert await client.flush()
    assert failures == []
    assert len(transport.facts()) == 1
