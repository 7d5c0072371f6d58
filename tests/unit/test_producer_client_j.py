"""The client speaking contract 2026-08 (profile-j.md §1-§3, §6 "Dedupe"): the contract
setting, every track call's fact (compared with the spec's worked examples where one has
the kind, decoded by the codec as 2026-08 always), upstream's gates, the flush barrier
and the plugin-used dedupe."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.runtime.errors import ConfigError
from producers import AnalyticsClient, ClientSettings, ProducerIdentity, SyncAnalyticsClient
from producers.client.gates import DEDUPE_CLEAR_AT
from producers.publishing.bulk import publish_lines
from tests.producer_helpers import MemoryTransport
from tests.producer_j_calls import PROFILE_ONLY, TRACKING, call_for, vector_facts


def make_client(contract: str | None = None) -> tuple[AnalyticsClient, MemoryTransport]:
    transport = MemoryTransport()
    client = AnalyticsClient(
        identity=ProducerIdentity(instance_id="host/pid-1/boot-j"),
        transport=transport,
        contract=contract,  # type: ignore[arg-type]
    )
    return client, transport


def decoded_facts(transport: MemoryTransport) -> list[dict[str, Any]]:
    """Every published fact, after the codec decoded it as the contract it names."""
    facts = transport.facts()
    for fact in facts:
        assert decode_fact(orjson.dumps(fact)).contract == fact["source"].get("contract", "2026-06")
    return facts


def test_the_contract_is_a_setting_with_an_env_var_and_a_constructor_argument() -> None:
    assert ClientSettings().contract == "2026-08"
    assert ClientSettings.from_env({}).contract == "2026-08"
    assert ClientSettings.from_env({"ANALYTICS_CLIENT_CONTRACT": "2026-06"}).contract == "2026-06"
    with pytest.raises(ConfigError, match="ANALYTICS_CLIENT_CONTRACT"):
        ClientSettings.from_env({"ANALYTICS_CLIENT_CONTRACT": "2026-07"})
    with pytest.raises(ValueError, match="contract must be one of"):
        ClientSettings(contract="S")  # type: ignore[arg-type]
    settings = ClientSettings(contract="2026-06")
    assert AnalyticsClient(settings, transport=MemoryTransport()).contract == "2026-06"
    overridden = AnalyticsClient(settings, transport=MemoryTransport(), contract="2026-08")
    assert overridden.contract == "2026-08"
    assert overridden.settings.contract == "2026-08"


async def test_a_2026_08_client_names_its_contract_and_2026_06_writes_no_key() -> None:
    for contract in ("2026-08", "2026-06"):
        client, transport = make_client(contract)
        async with client:
            assert client.track_notification("turn/started", {"threadId": "t", "turn": {}})
            await client.flush()
        source = transport.facts()[0]["source"]
        if contract == "2026-06":
            assert "contract" not in source
        else:
            assert list(source) == ["instance_id", "originator", "runtime", "contract"]
            assert source["contract"] == "2026-08"


async def test_every_worked_example_fact_is_made_by_its_track_call() -> None:
    examples = vector_facts()
    client, transport = make_client()
    async with client:
        for fact in examples:
            assert call_for(fact)(client), fact["kind"]
        assert await client.flush()
    published = decoded_facts(transport)
    assert [f["kind"] for f in published] == [*(f["kind"] for f in examples), "flush"]
    for made, example in zip(published, examples, strict=False):
        assert made["connection_id"] == example["connection_id"], example["fact_id"]
        expected = dict(example["payload"])
        if example["kind"] == "explicit_client_interrupt_request":
            # Stamped by the client when the request is tracked (upstream: wall clock).
            assert made["payload"]["requested_at_ms"] == made["observed_at_ms"]
            expected["requested_at_ms"] = made["observed_at_ms"]
        assert made["payload"] == expected, example["fact_id"]
        assert list(made["payload"]) == list(expected), example["fact_id"]  # key order


async def test_the_kinds_without_a_worked_example_have_the_spec_payloads() -> None:
    client, transport = make_client()
    async with client:
        for kind, call, _, _ in PROFILE_ONLY:
            assert call(client), kind
        await client.flush()
    published = decoded_facts(transport)
    assert [f["kind"] for f in published] == [*(k for k, *_ in PROFILE_ONLY), "flush"]
    for made, (kind, _, conn, payload) in zip(published, PROFILE_ONLY, strict=False):
        assert (made["connection_id"], made["payload"]) == (conn, payload), kind
    assert published[-1]["payload"] == {}


async def test_an_interrupt_request_becomes_its_own_fact_and_one_without_turn_id_is_dropped() -> (
    None
):
    client, transport = make_client()
    async with client:
        before = time.time_ns() // 1_000_000
        assert client.track_request(7, 4, "turn/interrupt", {"threadId": "t", "turnId": "u"})
        after = time.time_ns() // 1_000_000
        assert not client.track_request(7, 5, "turn/interrupt", {"threadId": "t", "turnId": ""})
        assert not client.track_request(7, 6, "turn/interrupt", {"threadId": "t"})
        assert not client.track_request(7, 7, "thread/list", {})  # not read: gated
        assert client.track_response(7, 4, "turn/interrupt", {})
        assert not client.track_response(7, 8, "thread/list", {"data": []})
        await client.flush()
    facts = decoded_facts(transport)
    assert [f["kind"] for f in facts] == [
        "explicit_client_interrupt_request",
        "client_response",
        "flush",
    ]
    interrupt = facts[0]
    assert interrupt["connection_id"] == 7
    assert interrupt["payload"]["turn_id"] == "u"
    assert before <= interrupt["payload"]["requested_at_ms"] <= after
    assert facts[1]["payload"] == {
        "request_id": 4,
        "method": "turn/interrupt",
        "result": {},
        "thread_originator": None,
    }
    assert client.stats.gated == 4


async def test_notifications_upstream_forwards_under_2026_08_only() -> None:
    archived = ("thread/archived", {"threadId": "t"})
    started = ("item/autoApprovalReview/started", {"threadId": "t", "turnId": "u"})
    j_client, j_transport = make_client()
    s_client, s_transport = make_client("2026-06")
    async with j_client, s_client:
        assert j_client.track_notification(*archived)
        assert j_client.track_notification(*started)
        assert not j_client.track_notification("thread/started", {"thread": {}})
        assert not s_client.track_notification(*archived)
        await j_client.flush()
        await s_client.flush()
    assert [f["payload"]["method"] for f in j_transport.facts()[:2]] == [
        "thread/archived",
        "item/autoApprovalReview/started",
    ]
    assert s_transport.facts() == []


async def test_a_2026_06_client_refuses_the_2026_08_calls_with_one_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, transport = make_client("2026-06")
    async with client:
        with caplog.at_level(logging.WARNING, "producers.client.analytics_client"):
            for kind, call, _, _ in PROFILE_ONLY:
                assert call(client) is False, kind
            assert client.track_goal_event({"goal_id": "g"}) is False
            assert client.track_goal_event({"goal_id": "g"}) is False
            # Profile S has no interrupt fact: the request is gated as before.
            assert client.track_request(7, 4, "turn/interrupt", {"turnId": "u"}) is False
            # The originator has no place in Profile S: the plain response is sent.
            assert client.track_response_with_thread_originator(
                7, 1, "thread/start", {"thread": {"id": "t"}}, "codex_vscode"
            )
        assert await client.flush()
    refusals = [r.getMessage() for r in caplog.records if "is part of contract" in r.message]
    assert len(refusals) == len(PROFILE_ONLY) + 1
    assert (
        "track_goal_event is part of contract 2026-08; this client speaks 2026-06: not sent"
        in refusals
    )
    facts = transport.facts()
    assert [f["kind"] for f in facts] == ["client_response"]  # and no flush fact
    assert facts[0]["payload"] == {
        "request_id": 1,
        "method": "thread/start",
        "result": {"thread": {"id": "t"}},
    }
    assert client.stats.gated == len(PROFILE_ONLY) + 3


def test_a_disabled_client_sends_nothing_not_even_the_flush_barrier() -> None:
    transport = MemoryTransport()
    with SyncAnalyticsClient(ClientSettings(enabled=False), transport=transport) as client:
        assert not client.track_goal_event({"goal_id": "g"})
        assert client.flush()
    assert transport.records == []


async def test_flush_sends_the_barrier_even_into_a_full_queue() -> None:
    transport = MemoryTransport()
    client = AnalyticsClient(
        ClientSettings(queue_capacity=2), transport=transport, contract="2026-08"
    )
    for turn in ("a", "b", "c"):  # the third is dropped: the queue is full
        client.track_notification("turn/started", {"threadId": "t", "turn": {"id": turn}})
    assert client.stats.dropped_queue_full == 1
    await client.start()
    assert await client.flush()
    await client.close()
    kinds = [f["kind"] for f in transport.facts()]
    assert kinds == ["server_notification", "server_notification", "flush"]


def test_the_sync_client_speaks_2026_08_and_flushes_with_the_barrier() -> None:
    transport = MemoryTransport()
    with SyncAnalyticsClient(transport=transport) as client:
        assert client.contract == "2026-08"
        assert client.track_goal_event(
            {
                "thread_id": "t",
                "turn_id": None,
                "goal_id": "g",
                "event_kind": "created",
                "goal_status": "active",
                "has_token_budget": False,
                "cumulative_tokens_accounted": None,
                "cumulative_time_accounted_seconds": None,
            }
        )
        assert client.flush()
    assert [f["kind"] for f in decoded_facts(transport)] == ["goal", "flush"]


def plugin(local: str | None, remote: str | None) -> dict[str, Any]:
    return {"plugin_id": local, "remote_plugin_id": remote, "capability_summary": None}


async def test_plugin_used_dedupes_by_local_id_else_remote_id_else_never() -> None:
    client, transport = make_client()
    turn = {**TRACKING, "turn_id": "u-1"}
    other_turn = {**TRACKING, "turn_id": "u-2"}
    async with client:
        assert client.track_plugin_used(turn, plugin("linear@m", "plugins~A"))
        # The local key decides, whatever the remote id.
        assert not client.track_plugin_used(turn, plugin("linear@m", "plugins~B"))
        assert client.track_plugin_used(other_turn, plugin("linear@m", "plugins~A"))
        # No local id: the remote id is the key.
        assert client.track_plugin_used(turn, plugin(None, "plugins~A"))
        assert not client.track_plugin_used(turn, plugin(None, "plugins~A"))
        # Neither: always queued.
        assert client.track_plugin_used(turn, plugin(None, None))
        assert client.track_plugin_used(turn, plugin(None, None))
        await client.flush()
    assert client.stats.deduplicated == 2
    assert len(transport.facts()) == 6  # five plugin_used and the flush barrier


def test_plugin_used_keys_clear_at_4096_also_when_a_fact_has_no_key() -> None:
    client = AnalyticsClient(ClientSettings(queue_capacity=5000), transport=MemoryTransport())
    for n in range(DEDUPE_CLEAR_AT):
        assert client.track_plugin_used({**TRACKING, "turn_id": f"u-{n}"}, plugin(None, "r"))
    assert len(client._tracker.plugin_used) == DEDUPE_CLEAR_AT
    # Upstream checks the bound before it looks at the key: a keyless fact clears too.
    assert client.track_plugin_used(TRACKING, plugin(None, None))
    assert len(client._tracker.plugin_used) == 0
    assert client.track_plugin_used({**TRACKING, "turn_id": "u-0"}, plugin(None, "r"))


async def test_produce_publishes_lines_of_either_contract_as_given() -> None:
    """``codex-analytics produce`` (``publish_lines``): each line as it comes, whatever
    its contract; a line naming an unknown contract is refused with the field."""
    j_line = orjson.dumps(vector_facts()[0])
    s_fact = orjson.loads(j_line)
    del s_fact["source"]["contract"]
    s_fact["payload"]["tracking"].pop("product_client_id")
    s_fact["payload"]["plugin"]["capability_summary"].pop("plugin_namespace")
    s_line = orjson.dumps(s_fact)
    unknown = orjson.loads(j_line)
    unknown["source"]["contract"] = "2026-09"
    transport = MemoryTransport()
    summary = await publish_lines([j_line, orjson.dumps(unknown), s_line], transport, retry_for_s=1)
    assert (summary.accepted, summary.rejected) == (2, 1)
    (refused,) = summary.rejections
    assert (refused.line, refused.reason, refused.path) == (
        2,
        "unknown_enum_value",
        "source.contract",
    )
    assert [value for _, value in transport.records] == [j_line, s_line]


def test_repeated_flushes_into_a_full_queue_hold_one_barrier_past_the_bound() -> None:
    client = AnalyticsClient(
        ClientSettings(queue_capacity=1), transport=MemoryTransport(), contract="2026-08"
    )
    client.track_notification("turn/started", {"threadId": "t", "turn": {"id": "a"}})
    for _ in range(1000):  # never started: nothing drains the queue
        client._record_flush_barrier()
    assert client._tracker.pending() == 2  # the fact and one barrier standing for all


async def test_close_sends_the_barrier_unless_it_is_the_last_fact_already() -> None:
    client, transport = make_client("2026-08")
    await client.start()
    client.track_notification("turn/started", {"threadId": "t", "turn": {"id": "a"}})
    await client.close()
    assert [f["kind"] for f in decoded_facts(transport)] == ["server_notification", "flush"]
    client, transport = make_client("2026-08")
    async with client:
        assert await client.flush()
    assert [f["kind"] for f in decoded_facts(transport)] == ["flush"]
    client, transport = make_client("2026-06")
    async with client:
        client.track_notification("turn/started", {"threadId": "t", "turn": {"id": "a"}})
    assert [f["kind"] for f in decoded_facts(transport)] == ["server_notification"]
