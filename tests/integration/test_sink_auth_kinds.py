"""The sink's auth gate per kind and contract (profile-j.md §6) against a real broker and a
real HTTP receiver on 127.0.0.1: Profile J records of an ``api_key`` route arrive
filtered with the API key as the bearer token, those of an ``agent_identity`` route whole
with a signed assertion, and Profile S records of the ``api_key`` route are skipped as
before."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from codex_analytics.contract import route_key
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.versions import CONTRACT_J
from codex_analytics.devtools.receiver import Receiver

from .sink_helpers import SinkRun, eventually
from .stream_helpers import produce

pytestmark = pytest.mark.integration

API_KEY = "sk-proj-Integration-Secret-31"
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
PRIVATE_KEY_B64 = base64.b64encode(
    SIGNING_KEY.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
).decode()
API_ROUTE = AuthRoute(kind="api_key")  # an API key names no account
AGENT_ROUTE = AuthRoute(kind="agent_identity", account_id="acct-agent")


def event(event_type: str, plugin_id: str | None = None, n: int = 0) -> dict[str, Any]:
    """A hand-built event: only ``event_type`` and ``event_params.plugin_id`` matter here."""
    return {"event_type": event_type, "event_params": {"plugin_id": plugin_id, "n": n}}


def encoded(route: AuthRoute, seq: int, evt: dict[str, Any], *, j: bool) -> bytes:
    origin: dict[str, Any] = {"instance_id": f"inst-{route.kind}", "seq": seq, "index": 0}
    if j:
        origin["contract"] = CONTRACT_J
    return orjson.dumps({"route": route, "origin": origin, "event": evt})


@pytest.fixture
async def bare_receiver() -> AsyncIterator[Receiver]:
    """A recording endpoint that checks nothing: the validating one knows only Profile
    S's headers and events."""
    async with Receiver() as server:
        yield server


@pytest.fixture
def run(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    bare_receiver: Receiver,
) -> SinkRun:
    return SinkRun(
        bootstrap=kafka_bootstrap,
        prefix=unique_name("sinkauth"),
        tmp=tmp_path,
        base_url=bare_receiver.base_url,
        partitions=2,
    )


async def test_api_key_and_agent_identity_routes_send_what_their_kind_allows(
    run: SinkRun,
    bare_receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key_file = run.tmp / "api-key"
    key_file.write_text(API_KEY + "\n")
    run.env_overrides.update(
        ANALYTICS_AUTH_KIND="api_key", ANALYTICS_BEARER_TOKEN_FILE=str(key_file)
    )
    agent_record = {
        "agent_runtime_id": "agent-rt-7",
        "agent_private_key": PRIVATE_KEY_B64,
        "task_id": "task-7",
        "chatgpt_account_is_fedramp": False,
    }
    (run.secrets_dir / "acct-agent").write_bytes(orjson.dumps({"agent_identity": agent_record}))

    s_api = [event("codex_turn_event", n=i) for i in range(3)]
    j_api = [
        event("codex_turn_event", n=10),
        event("codex_plugin_used", "sample@market", n=11),
        event("codex_accepted_line_fingerprints", n=12),
        event("skill_invocation", "sample@market", n=13),
        event("codex_mcp_tool_call_event", None, n=14),
    ]
    j_agent = [
        event("codex_turn_event", n=20),
        event("codex_plugin_installed", "sample@market", n=21),
        event("codex_accepted_line_fingerprints", n=22),
        event("codex_turn_event", n=23),
    ]
    values = [
        *(encoded(API_ROUTE, i, e, j=False) for i, e in enumerate(s_api)),
        *(encoded(API_ROUTE, 10 + i, e, j=True) for i, e in enumerate(j_api)),
        *(encoded(AGENT_ROUTE, i, e, j=True) for i, e in enumerate(j_agent)),
    ]
    keys = [route_key(API_ROUTE)] * 8 + [route_key(AGENT_ROUTE)] * 4
    await run.create_topics()
    await produce(run.bootstrap, run.events, values, keys=keys)

    async with run.worker() as worker:
        # 2 of the API-key route's J events, and all 4 of the agent route's
        assert await eventually(lambda: bare_receiver.unique_event_count == 6, within=30)
        assert await eventually(
            lambda: worker.metrics.value("codex_sink_events_total", outcome="skipped") == 6,
            within=10,
        )
        skips = {
            reason: worker.metrics.value("codex_sink_gate_skipped_events_total", reason=reason)
            for reason in ("not_chatgpt_login", "api_key_filtered", "no_token")
        }

    assert skips == {"not_chatgpt_login": 3, "api_key_filtered": 3, "no_token": 0}
    by_auth: dict[str, list[dict[str, Any]]] = {"Bearer": [], "AgentAssertion": []}
    for request in bare_receiver.requests:
        assert request.status == 200
        scheme, _, credential = request.headers["authorization"].partition(" ")
        if scheme == "Bearer":
            assert credential == API_KEY
            assert "chatgpt-account-id" not in request.headers  # the key names no account
        else:
            assert scheme == "AgentAssertion"
            assert request.headers["chatgpt-account-id"] == "acct-agent"
            envelope = orjson.loads(base64.urlsafe_b64decode(credential + "==="))
            SIGNING_KEY.public_key().verify(
                base64.b64decode(envelope["signature"]),
                f"agent-rt-7:task-7:{envelope['timestamp']}".encode(),
            )
            if any(e["event_type"] == "codex_accepted_line_fingerprints" for e in request.events):
                assert len(request.events) == 1  # it travels alone
        by_auth[scheme].extend(request.events)
    assert by_auth == {"Bearer": [j_api[1], j_api[3]], "AgentAssertion": j_agent}
    committed = await run.committed()
    assert sum(o or 0 for o in committed.values()) == 12
    assert API_KEY not in caplog.text
    assert PRIVATE_KEY_B64 not in caplog.text
