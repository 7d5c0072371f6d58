"""The upstream auth gate and request headers (delivery.md §3.2, §3.3), as pure functions.

Profile S rule: send nothing, and log nothing, when there is no auth, the auth is not
a ChatGPT login, no access token can be obtained, or there is no account id. The sink
counts each skip by reason (never by account) and commits past it.

"No token" means the account genuinely has none (no secret file, no matching login). A
credential that exists but cannot be used now (its file unreadable, its token not a
header value) is not a skip: the lookup raises ``CredentialError`` through
:func:`admit`, and the delivery step retries and, if it lasts, dead-letters the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from codex_analytics.contract.facts import AuthRoute

from .credentials import CHATGPT_KINDS, Credential, CredentialProvider


class SkipReason(StrEnum):
    NO_AUTH = "no_auth"
    NOT_CHATGPT_LOGIN = "not_chatgpt_login"
    NO_TOKEN = "no_token"
    NO_ACCOUNT_ID = "no_account_id"


@dataclass(frozen=True, slots=True)
class Admitted:
    credential: Credential
    account_id: str
    is_fedramp: bool


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: SkipReason


def admit(route: AuthRoute, credentials: CredentialProvider) -> Admitted | Skipped:
    """Apply the gate to one route (``CredentialError`` from the lookup passes through).

    A route that names no account (its fact carried no ``source.auth``, or an
    anonymous one) takes the default credential when there is one: single-tenant mode,
    where the sink delivers for exactly one account and counts it as a ChatGPT login.
    """
    if route.account_id is None:
        credential = credentials.default()
        if credential is None:
            return Skipped(SkipReason.NO_AUTH if route.kind is None else _kind_or_token(route))
    else:
        credential = credentials.lookup(route.account_id)
    kind = route.kind if route.kind is not None else (credential and credential.auth_kind)
    if kind is None:
        return Skipped(SkipReason.NO_AUTH)
    if kind not in CHATGPT_KINDS:
        return Skipped(SkipReason.NOT_CHATGPT_LOGIN)
    if credential is None or not credential.access_token:
        return Skipped(SkipReason.NO_TOKEN)
    account_id = route.account_id or credential.account_id
    if not account_id:
        return Skipped(SkipReason.NO_ACCOUNT_ID)
    return Admitted(credential, account_id, route.is_fedramp or credential.is_fedramp)


def _kind_or_token(route: AuthRoute) -> SkipReason:
    return SkipReason.NOT_CHATGPT_LOGIN if route.kind not in CHATGPT_KINDS else SkipReason.NO_TOKEN


def request_headers(admitted: Admitted, idempotency_key: str) -> dict[str, str]:
    """The analytics request's headers (delivery.md §3.3), plus our ``Idempotency-Key``."""
    headers = {
        "Authorization": f"Bearer {admitted.credential.access_token}",
        "chatgpt-account-id": admitted.account_id,
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key,
    }
    if admitted.is_fedramp:
        headers["X-OpenAI-Fedramp"] = "true"
    return headers
