"""The sink's auth gate per auth kind and contract (profile-j.md §6): the gate of each
kind under each contract, the API-key filter, the headers of each credential, the
credential sources of every kind, the counts, and secrets kept out of everything."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.records import Origin
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S, ContractId
from codex_analytics.runtime.errors import ConfigError
from sinks.agent_identity import AgentIdentityKey, agent_identity_from_json
from sinks.auth import Admitted, SkipReason, decide, request_headers
from sinks.batching import BatchLimits, PartitionBatcher, SinkRecord
from sinks.capture import CaptureDestination
from sinks.credentials import (
    AuthJsonCredentials,
    Credential,
    CredentialChain,
    CredentialProblem,
    EnvCredentials,
    SecretsDirCredentials,
)
from sinks.delivery import BatchDelivery
from sinks.errors import InvalidCredentialError
from sinks.gate import _plan_each, plan_batch
from sinks.http import redact_headers
from sinks.metrics import SinkMetrics
from sinks.outcomes import Delivered, GateSkipped
from sinks.settings import AUTH_KINDS
from tests.unit.test_sink_outcomes import (
    FakeDestination,
    FakeLane,
    RecordingDeadLetters,
    settings,
)

API_KEY = "sk-proj-Secret-API-Key-77"
PAT = "pat-Secret-Token-88"
CHATGPT_TOKEN = "tok-Secret-ChatGPT-99"
HEADER_SECRET = "hdr-Secret-Value-66"
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PRIVATE_KEY_B64 = base64.b64encode(
    SIGNING_KEY.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
).decode()
AGENT_RECORD = {
    "agent_runtime_id": "agent-runtime-1",
    "agent_private_key": PRIVATE_KEY_B64,
    "account_id": "acct-agent",
    "chatgpt_user_id": "user-1",
    "email": None,
    "plan_type": "pro",
    "chatgpt_account_is_fedramp": False,
    "task_id": "task-1",
}
SECRETS = (API_KEY, PAT, CHATGPT_TOKEN, HEADER_SECRET, PRIVATE_KEY_B64)


# -- events and records, built by hand: only event_type and event_params.plugin_id matter


def event(event_type: str, plugin_id: str | None = "absent", **params: Any) -> bytes:
    body: dict[str, Any] = {"thread_id": "th-1", **params}
    if plugin_id != "absent":
        body["plugin_id"] = plugin_id
    return orjson.dumps({"event_type": event_type, "event_params": body})


PLUGIN_USED = event("codex_plugin_used", "sample@market", remote_plugin_id=None)
PLUGIN_USED_REMOTE_ONLY = event("codex_plugin_used", None, remote_plugin_id="plg_remote")
SKILL_FROM_PLUGIN = event("skill_invocation", "sample@market")
SKILL_OF_NO_PLUGIN = event("skill_invocation", None)
MCP_FROM_PLUGIN = event("codex_mcp_tool_call_event", "sample@market")
MCP_OF_NO_PLUGIN = event("codex_mcp_tool_call_event", None)
TURN = event("codex_turn_event")
ACCEPTED_LINES = event("codex_accepted_line_fingerprints")
PLUGIN_INSTALLED = event("codex_plugin_installed", "sample@market")


def record(
    offset: int,
    event_json: bytes,
    *,
    contract: ContractId = CONTRACT_J,
    route: AuthRoute | None = None,
) -> SinkRecord:
    event_type = orjson.loads(event_json)["event_type"]
    return SinkRecord(
        offset=offset,
        timestamp_ms=0,
        raw=b"raw",
        key=b"key",
        route=route or AuthRoute(kind="api_key", account_id="acct-1"),
        route_key=b"r",
        origin=Origin("inst", offset, 0, None if contract == CONTRACT_S else contract),
        event_type=event_type,
        event_json=event_json,
    )


def credential_of(kind: str, account: str | None = "acct-1") -> Credential:
    """A credential holding what ``kind`` needs (a unit: no source involved)."""
    if kind == "agent_identity":
        return Credential(
            kind, account, agent_identity=agent_identity_from_json(AGENT_RECORD), source="t"
        )
    if kind == "headers":
        return Credential(kind, account, headers=(("X-Api-Auth", HEADER_SECRET),), source="t")
    if kind == "bedrock_api_key":
        return Credential(kind, account, source="t")
    token = {"api_key": API_KEY, "personal_access_token": PAT}.get(kind, CHATGPT_TOKEN)
    return Credential(kind, account, token, source="t")


# -- the gate: every kind x contract ---------------------------------------------------


@pytest.mark.parametrize("ignore_gate", [False, True])
@pytest.mark.parametrize("route_kind", [*AUTH_KINDS, None])
def test_the_fast_path_plans_as_the_event_by_event_one(
    route_kind: str | None, ignore_gate: bool
) -> None:
    """A batch every contract of which admits the route is sent whole without looking at
    each event: the plan is the one the event-by-event path makes, for every kind of
    route and credential (or none), every mix of contracts, and the capture switch."""
    route = AuthRoute(kind=route_kind, account_id="acct-1")  # type: ignore[arg-type]
    mixes: list[list[ContractId]] = [[CONTRACT_S], [CONTRACT_J], [CONTRACT_S, CONTRACT_J]]
    credentials: list[Credential | None] = [None, *(credential_of(k) for k in AUTH_KINDS)]
    for credential in credentials:
        kind = route_kind or (credential.auth_kind if credential is not None else None)
        for mix in mixes:
            records = [
                record(i, e, contract=mix[i % len(mix)], route=route)
                for i, e in enumerate(J_EVERY_EVENT * 2)
            ]
            decisions = {c: decide(c, route, credential) for c in set(mix)}
            fast = plan_batch(records, route, credential, ignore_gate=ignore_gate)
            slow = _plan_each(records, route, credential, kind, decisions, ignore_gate=ignore_gate)
            assert fast == slow, (credential, mix)


J_EVERY_EVENT = [PLUGIN_USED, TURN, SKILL_OF_NO_PLUGIN, ACCEPTED_LINES]


@pytest.mark.parametrize("kind", AUTH_KINDS)
@pytest.mark.parametrize("contract", [CONTRACT_S, CONTRACT_J])
def test_each_kind_under_each_contract(kind: str, contract: ContractId) -> None:
    route = AuthRoute(kind=kind, account_id="acct-1")  # type: ignore[arg-type]
    records = [record(i, e, contract=contract, route=route) for i, e in enumerate(J_EVERY_EVENT)]
    plan = plan_batch(records, route, credential_of(kind))
    sent = [r.event_json for r in plan.send]
    if contract == CONTRACT_S:
        expected_s = kind in ("chatgpt", "chatgpt_tokens")
        assert sent == (J_EVERY_EVENT if expected_s else [])
        assert plan.skipped == (() if expected_s else ((SkipReason.NOT_CHATGPT_LOGIN, 4),))
    elif kind == "api_key":
        assert sent == [PLUGIN_USED]
        assert plan.skipped == ((SkipReason.API_KEY_FILTERED, 3),)
    elif kind == "bedrock_api_key":
        assert sent == []
        assert plan.skipped == ((SkipReason.NOT_CODEX_BACKEND, 4),)
    else:
        assert sent == J_EVERY_EVENT
        assert plan.skipped == ()
    assert (plan.admitted is not None) == bool(sent)


@pytest.mark.parametrize("contract", [CONTRACT_S, CONTRACT_J])
def test_an_unknown_kind_sends_nothing(contract: ContractId) -> None:
    route = AuthRoute(account_id="acct-1")
    plan = plan_batch([record(0, PLUGIN_USED, contract=contract, route=route)], route, None)
    assert (plan.send, plan.skipped) == ((), ((SkipReason.NO_AUTH, 1),))


def test_a_secret_files_unknown_kind_is_an_unknown_kind_for_profile_j() -> None:
    route = AuthRoute(account_id="acct-1")
    odd = Credential("sso_cookie", "acct-1", CHATGPT_TOKEN, source="t")
    plan = plan_batch([record(0, TURN, route=route)], route, odd)
    assert plan.skipped == ((SkipReason.NO_AUTH, 1),)


def test_a_j_route_of_a_known_kind_without_a_credential_is_skipped_not_sent_unauthenticated() -> (
    None
):
    route = AuthRoute(kind="chatgpt", account_id="acct-nobody")
    plan = plan_batch([record(0, TURN, route=route)], route, None)
    assert plan.skipped == ((SkipReason.NO_TOKEN, 1),)
    bedrock_login = plan_batch(
        [record(0, TURN, route=route)], route, credential_of("bedrock_api_key")
    )
    assert bedrock_login.skipped == ((SkipReason.NO_TOKEN, 1),)  # nothing to send with


def test_the_kind_comes_from_the_credential_when_the_route_names_none(tmp_path: Path) -> None:
    (tmp_path / "acct-1").write_bytes(orjson.dumps({"auth_kind": "api_key", "api_key": API_KEY}))
    route = AuthRoute(account_id="acct-1")
    credential = SecretsDirCredentials(tmp_path).lookup("acct-1")
    plan = plan_batch(
        [record(0, TURN, route=route), record(1, MCP_FROM_PLUGIN, route=route)], route, credential
    )
    assert [r.event_json for r in plan.send] == [MCP_FROM_PLUGIN]
    assert plan.admitted is not None
    assert plan.admitted.kind == "api_key"


@pytest.mark.parametrize(
    ("event_json", "kept"),
    [
        (PLUGIN_USED, True),
        (PLUGIN_USED_REMOTE_ONLY, False),  # the local id decides, not the remote one
        (SKILL_FROM_PLUGIN, True),
        (SKILL_OF_NO_PLUGIN, False),
        (MCP_FROM_PLUGIN, True),
        (MCP_OF_NO_PLUGIN, False),
        (event("codex_mcp_tool_call_event"), False),  # no plugin_id key at all
        (PLUGIN_INSTALLED, False),  # plugin_id set, but not a kind the filter keeps
        (TURN, False),
        (ACCEPTED_LINES, False),
    ],
)
def test_the_api_key_filter_keeps_only_plugin_attributed_events(
    event_json: bytes, kept: bool
) -> None:
    route = AuthRoute(kind="api_key")
    plan = plan_batch([record(0, event_json, route=route)], route, credential_of("api_key", None))
    assert bool(plan.send) is kept


def test_a_batch_of_both_contracts_is_gated_event_by_event() -> None:
    route = AuthRoute(kind="api_key", account_id="acct-1")
    records = [
        record(0, PLUGIN_USED, contract=CONTRACT_S, route=route),
        record(1, PLUGIN_USED, route=route),
        record(2, TURN, route=route),
        record(3, SKILL_FROM_PLUGIN, route=route),
    ]
    plan = plan_batch(records, route, credential_of("api_key"))
    assert [r.offset for r in plan.send] == [1, 3]
    assert plan.skipped == ((SkipReason.NOT_CHATGPT_LOGIN, 1), (SkipReason.API_KEY_FILTERED, 1))
    chatgpt = AuthRoute(kind="chatgpt", account_id="acct-1")
    both = plan_batch(records, chatgpt, credential_of("chatgpt"))
    assert [r.offset for r in both.send] == [0, 1, 2, 3]
    assert decide(CONTRACT_S, chatgpt, credential_of("chatgpt")) == both.admitted


def test_a_mixed_batchs_headers_do_not_depend_on_its_records_order() -> None:
    # An agent identity that also holds a token: 2026-06 admits it as a ChatGPT login
    # (Bearer), 2026-08 by its identity (AgentAssertion). The request takes the newest.
    route = AuthRoute(kind="chatgpt", account_id="acct-1")
    credential = Credential(
        "agent_identity",
        "acct-1",
        CHATGPT_TOKEN,
        agent_identity=agent_identity_from_json(AGENT_RECORD),
        source="t",
    )
    s_first = [record(0, TURN, contract=CONTRACT_S, route=route), record(1, TURN, route=route)]
    j_first = list(reversed(s_first))
    admitted = {plan_batch(batch, route, credential).admitted for batch in (s_first, j_first)}
    assert admitted == {decide(CONTRACT_J, route, credential)}


def test_the_capture_switch_opens_skips_but_keeps_the_api_key_filter() -> None:
    route = AuthRoute(kind="api_key", account_id="acct-1")
    records = [record(0, PLUGIN_USED, route=route), record(1, TURN, route=route)]
    plan = plan_batch(records, route, None, ignore_gate=True)
    assert ([r.offset for r in plan.send], plan.admitted) == ([0], None)


# -- headers ----------------------------------------------------------------------------


def admitted(kind: str, account: str | None, *, fedramp: bool = False) -> Admitted:
    route = AuthRoute(kind=kind, account_id=account, is_fedramp=fedramp)  # type: ignore[arg-type]
    decision = decide(CONTRACT_J, route, credential_of(kind, account))
    assert isinstance(decision, Admitted)
    return decision


@pytest.mark.parametrize(("account", "fedramp"), [(None, False), ("acct-1", True)])
def test_an_api_key_is_the_bearer_token_alone(account: str | None, fedramp: bool) -> None:
    # Upstream's API-key auth has no account and is never FedRAMP: even a route that
    # names them sends the key alone.
    assert request_headers(admitted("api_key", account, fedramp=fedramp), "k") == {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "Idempotency-Key": "k",
    }


@pytest.mark.parametrize("kind", ["chatgpt", "chatgpt_tokens", "personal_access_token"])
def test_bearer_kinds_omit_only_the_header_they_cannot_fill(kind: str) -> None:
    token = PAT if kind == "personal_access_token" else CHATGPT_TOKEN
    assert request_headers(admitted(kind, None), "k") == {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": "k",
    }
    assert request_headers(admitted(kind, "acct-1"), "k")["chatgpt-account-id"] == "acct-1"


def test_an_agent_identity_sends_a_fresh_signed_assertion_with_account_and_fedramp() -> None:
    now = datetime(2026, 8, 6, 12, 30, 5, tzinfo=UTC)
    headers = request_headers(admitted("agent_identity", "acct-1", fedramp=True), "k", now=now)
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "AgentAssertion"
    envelope = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    # upstream's envelope: sorted keys, compact, RFC 3339 seconds
    assert list(envelope) == ["agent_runtime_id", "signature", "task_id", "timestamp"]
    assert envelope["timestamp"] == "2026-08-06T12:30:05Z"
    assert (envelope["agent_runtime_id"], envelope["task_id"]) == ("agent-runtime-1", "task-1")
    SIGNING_KEY.public_key().verify(  # raises if the signature is wrong
        base64.b64decode(envelope["signature"]),
        b"agent-runtime-1:task-1:2026-08-06T12:30:05Z",
    )
    assert (headers["chatgpt-account-id"], headers["X-OpenAI-Fedramp"]) == ("acct-1", "true")
    later = request_headers(admitted("agent_identity", "acct-1"), "k")["Authorization"]
    assert later != headers["Authorization"]  # signed again, at its own time


def test_external_headers_are_sent_as_given_and_nothing_else_of_the_account() -> None:
    assert request_headers(admitted("headers", "acct-1", fedramp=True), "k") == {
        "X-Api-Auth": HEADER_SECRET,
        "Content-Type": "application/json",
        "Idempotency-Key": "k",
    }


def test_an_error_body_loses_every_secret_header_value() -> None:
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "X-Api-Auth": HEADER_SECRET,
        "chatgpt-account-id": "acct-1",
    }
    body = orjson.dumps({"echo": [API_KEY, HEADER_SECRET, "acct-1"]})
    assert redact_headers(body, headers) == b'{"echo":["[redacted]","[redacted]","acct-1"]}'


# -- credential sources -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kind", "material"),
    [
        ({"auth_kind": "api_key", "api_key": API_KEY}, "api_key", "token"),
        ({"api_key": API_KEY}, "api_key", "token"),  # the kind from the material
        ({"auth_kind": "api_key", "access_token": API_KEY}, "api_key", "token"),
        ({"personal_access_token": PAT}, "personal_access_token", "token"),
        ({"agent_identity": AGENT_RECORD}, "agent_identity", "agent_identity"),
        ({"headers": {"X-Api-Auth": HEADER_SECRET}}, "headers", "headers"),
        ({"auth_kind": "bedrock_api_key"}, "bedrock_api_key", None),
        ({"access_token": CHATGPT_TOKEN}, "chatgpt", "token"),
    ],
)
def test_the_secrets_dir_json_form_holds_every_kind(
    tmp_path: Path, content: dict[str, Any], kind: str, material: str | None
) -> None:
    (tmp_path / "acct-1").write_bytes(orjson.dumps(content))
    found = SecretsDirCredentials(tmp_path).lookup("acct-1")
    assert found is not None
    assert (found.auth_kind, found.account_id) == (kind, "acct-1")
    held = {
        "token": bool(found.access_token),
        "agent_identity": found.agent_identity is not None,
        "headers": bool(found.headers),
    }
    assert [m for m, present in held.items() if present] == ([material] if material else [])
    assert found.can_authenticate is (material is not None)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"agent_identity": {**AGENT_RECORD, "task_id": None}}, "no task_id"),
        ({"agent_identity": {**AGENT_RECORD, "agent_private_key": "bm90IGEga2V5"}}, "PKCS#8"),
        ({"agent_identity": {**AGENT_RECORD, "agent_private_key": "%%%"}}, "not base64"),
        ({"headers": {"X-Api-Auth": "a\nb" + HEADER_SECRET}}, "not visible ASCII"),
        ({"headers": {"Content-Type": HEADER_SECRET}}, "sets content-type"),
        ({"headers": {}}, "non-empty"),
        ({"auth_kind": "api_key", "api_key": API_KEY + "\u00fc"}, "API key holds a non-ASCII"),
    ],
)
def test_an_unusable_secret_is_invalid_and_never_quoted(
    tmp_path: Path, content: dict[str, Any], why: str
) -> None:
    (tmp_path / "acct-1").write_bytes(orjson.dumps(content))
    with pytest.raises(InvalidCredentialError) as raised:
        SecretsDirCredentials(tmp_path).lookup("acct-1")
    assert why in str(raised.value)
    for secret in (*SECRETS, "bm90IGEga2V5"):
        assert secret not in str(raised.value)


def auth_json(tmp_path: Path, content: dict[str, Any]) -> AuthJsonCredentials:
    (tmp_path / "auth.json").write_bytes(orjson.dumps(content))
    return AuthJsonCredentials(tmp_path)


def test_an_api_key_auth_json_is_an_api_key_credential_and_the_default(tmp_path: Path) -> None:
    source = auth_json(tmp_path, {"OPENAI_API_KEY": API_KEY, "tokens": None})
    found = source.default()
    assert found is not None
    assert (found.auth_kind, found.account_id, found.access_token) == ("api_key", None, API_KEY)
    assert source.lookup("acct-1") is None
    explicit = auth_json(tmp_path, {"auth_mode": "apikey", "OPENAI_API_KEY": API_KEY})
    os.utime(tmp_path / "auth.json", ns=(1, 2))
    assert explicit.default() == found


def test_auth_json_logins_of_the_other_kinds(tmp_path: Path) -> None:
    agent = auth_json(tmp_path, {"auth_mode": "agentIdentity", "agent_identity": AGENT_RECORD})
    found = agent.lookup("acct-agent")
    assert found is not None
    assert found.agent_identity is not None
    assert agent.default() == found
    (tmp_path / "p").mkdir()
    pat = auth_json(tmp_path / "p", {"personal_access_token": PAT})
    assert pat.default() == Credential("personal_access_token", None, PAT, source="auth.json")
    (tmp_path / "b").mkdir()
    bedrock = auth_json(tmp_path / "b", {"bedrock_api_key": {"api_key": "x", "region": "r"}})
    found_bedrock = bedrock.default()
    assert found_bedrock is not None
    assert (found_bedrock.auth_kind, found_bedrock.can_authenticate) == ("bedrock_api_key", False)


def test_a_chatgpt_auth_json_is_still_found_by_its_account_only(tmp_path: Path) -> None:
    source = auth_json(tmp_path, {"tokens": {"access_token": CHATGPT_TOKEN, "account_id": "a"}})
    assert source.default() is None
    found = source.lookup("a")
    assert found is not None
    assert found.auth_kind == "chatgpt"


def test_the_single_account_settings_take_a_kind_and_its_secret(tmp_path: Path) -> None:
    api = EnvCredentials.from_env(
        {"ANALYTICS_AUTH_KIND": "api_key", "ANALYTICS_BEARER_TOKEN": API_KEY}
    )
    default = api.default()
    assert default is not None
    assert (default.auth_kind, default.access_token, default.account_id) == (
        "api_key",
        API_KEY,
        None,
    )
    agent = EnvCredentials.from_env(
        {"ANALYTICS_AGENT_IDENTITY": orjson.dumps(AGENT_RECORD).decode()}
    )
    found = agent.lookup("acct-agent")  # the record names its account
    assert found is not None
    assert found.auth_kind == "agent_identity"
    headers = EnvCredentials.from_env(
        {"ANALYTICS_AUTH_HEADERS": orjson.dumps({"X-Api-Auth": HEADER_SECRET}).decode()}
    ).default()
    assert headers is not None
    assert headers.headers == (("X-Api-Auth", HEADER_SECRET),)
    bedrock = EnvCredentials.from_env({"ANALYTICS_AUTH_KIND": "bedrock_api_key"}).default()
    assert bedrock is not None
    assert not bedrock.can_authenticate
    for text in (repr(api), repr(agent), repr(default), repr(found), repr(headers)):
        for secret in SECRETS:
            assert secret not in text


def test_a_secret_file_setting_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(API_KEY + "\n")
    source = EnvCredentials.from_env(
        {
            "ANALYTICS_AUTH_KIND": "api_key",
            "ANALYTICS_BEARER_TOKEN_FILE": str(path),
            "ANALYTICS_ACCOUNT_ID": "acct-1",
        }
    )
    first = source.lookup("acct-1")
    assert first is not None
    assert first.access_token == API_KEY
    path.write_text("sk-rotated-Key-2\n")
    os.utime(path, ns=(1, 2))
    second = source.default()
    assert second is not None
    assert second.access_token == "sk-rotated-Key-2"
    assert source.lookup("acct-other") is None
    path.write_text("bad key " + API_KEY)
    os.utime(path, ns=(3, 4))
    with pytest.raises(InvalidCredentialError) as raised:
        source.lookup("acct-1")
    assert API_KEY not in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANALYTICS_AUTH_KIND": "api_key"}, "api_key needs ANALYTICS_BEARER_TOKEN or"),
        (
            {"ANALYTICS_AUTH_KIND": "headers", "ANALYTICS_BEARER_TOKEN": API_KEY},
            "ANALYTICS_BEARER_TOKEN is set but ANALYTICS_AUTH_KIND=headers does not use it",
        ),
        (
            {"ANALYTICS_BEARER_TOKEN": API_KEY, "ANALYTICS_BEARER_TOKEN_FILE": "{file}"},
            "set one of ANALYTICS_BEARER_TOKEN and ANALYTICS_BEARER_TOKEN_FILE",
        ),
        ({"ANALYTICS_AUTH_KIND": "password"}, "ANALYTICS_AUTH_KIND must be one of"),
    ],
)
def test_single_account_settings_that_do_not_fit_together_stop_the_start(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    (tmp_path / "f").write_text("x")
    env = {k: v.replace("{file}", str(tmp_path / "f")) for k, v in env.items()}
    with pytest.raises(ConfigError, match=message) as raised:
        CredentialChain.from_env(env)
    assert API_KEY not in str(raised.value)


def test_an_agent_identity_key_never_shows_in_a_repr() -> None:
    key = agent_identity_from_json(AGENT_RECORD)
    assert isinstance(key, AgentIdentityKey)
    credential = credential_of("agent_identity")
    for text in (repr(key), repr(credential), str(credential)):
        assert PRIVATE_KEY_B64 not in text
        assert "agent-runtime-1" in text or "agent_identity" in text


def test_a_credential_without_any_material_is_refused_for_a_sending_kind(tmp_path: Path) -> None:
    (tmp_path / "acct-1").write_bytes(orjson.dumps({"auth_kind": "agent_identity"}))
    with pytest.raises(InvalidCredentialError, match="nor what agent_identity needs"):
        SecretsDirCredentials(tmp_path).lookup("acct-1")
    with pytest.raises(CredentialProblem, match="headers map sets host"):
        Credential("headers", "a", headers=(("Host", "x"),))


# -- batching: the filter comes before the accepted-lines isolation ---------------------


@pytest.mark.parametrize(("kind", "batches"), [("api_key", 1), ("chatgpt", 3)])
def test_accepted_lines_cut_no_batch_of_an_api_key_route(kind: str, batches: int) -> None:
    route = AuthRoute(kind=kind, account_id="acct-1")  # type: ignore[arg-type]
    batcher = PartitionBatcher(0, BatchLimits())
    closed = [
        b
        for i, e in enumerate([PLUGIN_USED, ACCEPTED_LINES, SKILL_FROM_PLUGIN])
        for b in batcher.add(record(i, e, route=route))
    ]
    assert len([*closed, *batcher.flush()]) == batches


# -- delivery: what is sent, captured and counted ---------------------------------------


def j_batch(events: list[bytes], route: AuthRoute) -> Any:
    """The first batch ``events`` of ``route`` form."""
    batcher = PartitionBatcher(0, BatchLimits())
    closed = [b for i, e in enumerate(events) for b in batcher.add(record(i, e, route=route))]
    return [*closed, *batcher.flush()][0]


def step_for(destination: Any, credentials: Any, **env: str) -> tuple[BatchDelivery, SinkMetrics]:
    metrics = SinkMetrics()
    step = BatchDelivery(settings(**env), destination, credentials, metrics, RecordingDeadLetters())
    return step, metrics


async def test_an_api_key_batch_sends_only_the_allowed_events_and_counts_the_rest() -> None:
    route = AuthRoute(kind="api_key")
    credentials = CredentialChain.from_env(
        {"ANALYTICS_AUTH_KIND": "api_key", "ANALYTICS_BEARER_TOKEN": API_KEY}
    )
    destination = FakeDestination()
    step, metrics = step_for(destination, credentials)
    for reason in SkipReason:  # every reason exported from the start, at 0
        assert metrics.value("codex_sink_gate_skipped_events_total", reason=reason.value) == 0
    batch = j_batch([TURN, PLUGIN_USED, ACCEPTED_LINES, MCP_FROM_PLUGIN, MCP_OF_NO_PLUGIN], route)
    outcome = await step(batch, FakeLane())
    metrics.record(outcome)
    assert isinstance(outcome, Delivered)
    ((body, headers),) = destination.sent
    assert body == b'{"events":[' + PLUGIN_USED + b"," + MCP_FROM_PLUGIN + b"]}"
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert "chatgpt-account-id" not in headers
    assert headers["Idempotency-Key"] != batch.idempotency_key()  # the key of what was sent
    assert (outcome.events, outcome.skipped) == (2, ((SkipReason.API_KEY_FILTERED, 3),))
    value = metrics.value
    assert value("codex_sink_events_total", outcome="delivered") == 2
    assert value("codex_sink_events_total", outcome="skipped") == 3
    assert value("codex_sink_gate_skipped_events_total", reason="api_key_filtered") == 3


async def test_an_api_key_batch_with_nothing_allowed_sends_no_request() -> None:
    credentials = CredentialChain.from_env(
        {"ANALYTICS_AUTH_KIND": "api_key", "ANALYTICS_BEARER_TOKEN": API_KEY}
    )
    destination = FakeDestination()
    step, metrics = step_for(destination, credentials)
    outcome = await step(j_batch([TURN, SKILL_OF_NO_PLUGIN], AuthRoute(kind="api_key")), FakeLane())
    assert outcome == GateSkipped(SkipReason.API_KEY_FILTERED, 2)
    assert destination.sent == []
    metrics.record(outcome)
    assert metrics.value("codex_sink_events_total", outcome="skipped") == 2
    assert metrics.value("codex_sink_batches_total", outcome="skipped") == 1


async def test_the_capture_file_records_the_filtered_batch_and_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    capture = CaptureDestination(str(path))
    capture.prepare()
    credentials = CredentialChain.from_env(
        {"ANALYTICS_AUTH_KIND": "api_key", "ANALYTICS_BEARER_TOKEN": API_KEY}
    )
    step, _ = step_for(capture, credentials, CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(path))
    outcome = await step(j_batch([TURN, PLUGIN_USED], AuthRoute(kind="api_key")), FakeLane())
    assert isinstance(outcome, Delivered)
    assert path.read_bytes() == b'{"events":[' + PLUGIN_USED + b"]}\n"


async def test_an_agent_identity_route_is_sent_whole_with_an_assertion(tmp_path: Path) -> None:
    (tmp_path / "acct-agent").write_bytes(orjson.dumps({"agent_identity": AGENT_RECORD}))
    credentials = CredentialChain.from_env({"ANALYTICS_SECRETS_DIR": str(tmp_path)})
    destination = FakeDestination()
    step, _ = step_for(destination, credentials)
    route = AuthRoute(kind="agent_identity", account_id="acct-agent")
    outcome = await step(j_batch([TURN, ACCEPTED_LINES], route), FakeLane())
    assert isinstance(outcome, Delivered)
    assert outcome.events == 1  # accepted lines travel alone: the batch was cut before it
    ((_, headers),) = destination.sent
    assert headers["Authorization"].startswith("AgentAssertion ")
    assert headers["chatgpt-account-id"] == "acct-agent"


def test_config_check_reads_the_single_account_credential_without_showing_it() -> None:
    from codex_analytics.cli.config_checks import check_environment

    base = {"ANALYTICS_BASE_URL": "http://h", "KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    good = check_environment(
        {**base, "ANALYTICS_AUTH_KIND": "api_key", "ANALYTICS_BEARER_TOKEN": API_KEY},
        ["sink worker"],
    )
    assert "ok      single-account credential: api_key, account (none) [sink worker]" in [
        f.line() for f in good
    ]
    no_task = orjson.dumps({**AGENT_RECORD, "task_id": None}).decode()
    bad = check_environment({**base, "ANALYTICS_AGENT_IDENTITY": no_task}, ["sink worker"])
    problems = [f.message for f in bad if f.level == "error"]
    assert any("agent identity has no task_id" in m for m in problems), problems
    for finding in (*good, *bad):
        assert API_KEY not in finding.message
        assert PRIVATE_KEY_B64 not in finding.message
