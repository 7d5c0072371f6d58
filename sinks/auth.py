"""The upstream auth gate and request headers, per contract, as pure functions.

Profile S (``2026-06``, delivery.md §3.2, §3.3): send nothing, and log nothing, when
there is no auth, the auth is not a ChatGPT login, no access token can be obtained, or
there is no account id.

Profile J (``2026-08``, profile-j.md §6; upstream ``client.rs`` ``send_track_events``):
the auth kind is the route's, else the kind of the credential the sink resolves for the
route's account, else unknown. ``chatgpt``, ``chatgpt_tokens``, ``agent_identity``,
``headers`` and ``personal_access_token`` send every event; ``api_key`` sends only the
events upstream's ``can_send_with_api_key_auth`` keeps (:func:`may_send_with_api_key`);
``bedrock_api_key`` and an unknown kind send nothing. A header the credential cannot
fill (no account id) is left out rather than the batch skipped; a route whose kind is
known but for which the sink holds no credential at all is skipped as ``no_token``
(PROPOSAL: upstream always holds its login; a request without one would only be
refused, and retried for ever).

The route's kind decides what may be sent; the credential's material decides how the
request is authenticated (:func:`request_headers`).

The sink counts each skip by reason (never by account) and commits past it. "No token"
means the account genuinely has none (no secret file, no matching login). A
credential that exists but cannot be used now (its file unreadable, its token not a
header value) is not a skip: the lookup raises ``CredentialError`` through
:func:`resolve`, and the delivery step retries and, if it lasts, dead-letters the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

import orjson

from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.versions import CONTRACT_S, ContractId

from .credentials import CHATGPT_KINDS, Credential, CredentialProvider


class SkipReason(StrEnum):
    NO_AUTH = "no_auth"
    NOT_CHATGPT_LOGIN = "not_chatgpt_login"
    NO_TOKEN = "no_token"
    NO_ACCOUNT_ID = "no_account_id"
    #: Profile J: a Bedrock login (upstream: ``!auth.uses_codex_backend()``).
    NOT_CODEX_BACKEND = "not_codex_backend"
    #: Profile J: an event an API-key login may not send (``can_send_with_api_key_auth``).
    API_KEY_FILTERED = "api_key_filtered"


#: The Profile J kinds that send every event (profile-j.md §6).
SEND_ALL_KINDS: frozenset[str] = frozenset(
    {"chatgpt", "chatgpt_tokens", "agent_identity", "headers", "personal_access_token"}
)
#: The Profile J kind that sends only plugin-attributed events.
API_KEY_KIND = "api_key"
#: The event types an API-key login may send, when their ``event_params.plugin_id`` is
#: not null (upstream ``TrackEventRequest::can_send_with_api_key_auth``, ``events.rs``).
API_KEY_EVENT_TYPES: frozenset[str] = frozenset(
    {"codex_plugin_used", "skill_invocation", "codex_mcp_tool_call_event"}
)


Material = Literal["bearer", "agent_identity", "headers"]


@dataclass(frozen=True, slots=True)
class Admitted:
    credential: Credential
    #: ``None`` only under Profile J: the account header is then left out.
    account_id: str | None
    is_fedramp: bool
    #: The auth kind that applied.
    kind: str
    #: What authenticates the request: ``bearer`` (the token), ``agent_identity`` (an
    #: assertion signed per request) or ``headers`` (external headers as given).
    material: Material = "bearer"


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: SkipReason


def resolve(route: AuthRoute, credentials: CredentialProvider) -> Credential | None:
    """The credential of the route's account (``CredentialError`` passes through).

    A route that names no account (its fact carried no ``source.auth``, or an
    anonymous one) takes the default credential when there is one: single-tenant mode,
    where the sink delivers for exactly one account.
    """
    if route.account_id is None:
        return credentials.default()
    return credentials.lookup(route.account_id)


def admit(route: AuthRoute, credentials: CredentialProvider) -> Admitted | Skipped:
    """Profile S's gate for one route (``CredentialError`` from the lookup passes through)."""
    return decide(CONTRACT_S, route, resolve(route, credentials))


def auth_kind(route: AuthRoute, credential: Credential | None) -> str | None:
    """The kind that applies: the route's, else its credential's, else unknown."""
    if route.kind is not None:
        return route.kind
    return credential.auth_kind if credential is not None else None


def decide(
    contract: ContractId, route: AuthRoute, credential: Credential | None
) -> Admitted | Skipped:
    """The gate of ``contract`` for a route whose credential was resolved."""
    kind = auth_kind(route, credential)
    if contract == CONTRACT_S:
        return _decide_s(kind, route, credential)
    return _decide_j(kind, route, credential)


def _decide_s(
    kind: str | None, route: AuthRoute, credential: Credential | None
) -> Admitted | Skipped:
    if kind is None:
        return Skipped(SkipReason.NO_AUTH)
    if kind not in CHATGPT_KINDS:
        return Skipped(SkipReason.NOT_CHATGPT_LOGIN)
    if credential is None or not credential.access_token:
        return Skipped(SkipReason.NO_TOKEN)
    account_id = route.account_id or credential.account_id
    if not account_id:
        return Skipped(SkipReason.NO_ACCOUNT_ID)
    return Admitted(credential, account_id, route.is_fedramp or credential.is_fedramp, kind)


def _decide_j(
    kind: str | None, route: AuthRoute, credential: Credential | None
) -> Admitted | Skipped:
    if kind == "bedrock_api_key":
        return Skipped(SkipReason.NOT_CODEX_BACKEND)
    if kind not in SEND_ALL_KINDS and kind != API_KEY_KIND:
        return Skipped(SkipReason.NO_AUTH)  # none, or a secret file's unknown auth_kind
    if credential is None or not credential.can_authenticate:
        return Skipped(SkipReason.NO_TOKEN)
    if credential.auth_kind == API_KEY_KIND:
        # Upstream's API-key auth has no token data: no account, never FedRAMP
        # (``CodexAuth::get_account_id`` / ``is_fedramp_account``), so it sends neither.
        return Admitted(credential, None, False, kind, _material(credential))
    account_id = route.account_id or credential.account_id
    fedramp = route.is_fedramp or credential.is_fedramp
    return Admitted(credential, account_id, fedramp, kind, _material(credential))


def _material(credential: Credential) -> Material:
    """What authenticates a Profile J request: the material of the credential's own
    kind first (a credential may hold a token too), else whatever it holds."""
    if credential.headers and (credential.auth_kind == "headers" or not credential.access_token):
        return "headers"
    if credential.agent_identity is not None and (
        credential.auth_kind == "agent_identity" or not credential.access_token
    ):
        return "agent_identity"
    return "bearer"


def filters_with_api_key(contract: ContractId, route: AuthRoute) -> bool:
    """Whether this route's events of ``contract`` pass the API-key filter. Known from
    the record alone only when the route names its kind (the batcher asks, so that
    the filter comes before the accepted-lines isolation, as upstream)."""
    return contract != CONTRACT_S and route.kind == API_KEY_KIND


def may_send_with_api_key(event_type: str, event_json: bytes) -> bool:
    """Upstream's ``can_send_with_api_key_auth``: a plugin-used, skill-invocation or MCP
    tool-call event whose ``event_params.plugin_id`` is not null (``codex_plugin_used``
    flattens the plugin metadata into its params, so the key is the same)."""
    if event_type not in API_KEY_EVENT_TYPES:
        return False
    try:
        event = orjson.loads(event_json)
    except orjson.JSONDecodeError:
        return False
    params = event.get("event_params") if isinstance(event, dict) else None
    return isinstance(params, dict) and params.get("plugin_id") is not None


def request_headers(
    admitted: Admitted, idempotency_key: str, *, now: datetime | None = None
) -> dict[str, str]:
    """The analytics request's headers, plus our ``Idempotency-Key``: upstream's
    ``auth_provider_from_auth(auth).to_auth_headers()`` by the credential's material.

    * external headers (the ``headers`` kind): those headers as given, nothing else;
    * an agent identity: ``Authorization: AgentAssertion <assertion signed now>``;
    * a token: ``Authorization: Bearer <token>``;

    then (not for external headers) the account header when an account is known and
    ``X-OpenAI-Fedramp: true`` for FedRAMP. Under Profile S the account and the token
    are always there (the gate skips otherwise), so its headers are what they were.
    """
    credential = admitted.credential
    headers: dict[str, str] = {}
    if admitted.material == "headers":
        headers.update(credential.headers)
    else:
        if admitted.material == "agent_identity" and credential.agent_identity is not None:
            headers["Authorization"] = credential.agent_identity.authorization(now)
        elif credential.access_token:
            headers["Authorization"] = f"Bearer {credential.access_token}"
        if admitted.account_id:
            headers["chatgpt-account-id"] = admitted.account_id
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = idempotency_key
    if admitted.is_fedramp and admitted.material != "headers":
        headers["X-OpenAI-Fedramp"] = "true"
    return headers
