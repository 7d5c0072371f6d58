"""What the local receiver checks in an analytics request, as the real endpoint would
(pure; the receiver turns a failed check into its answer).

A body does not say which contract its events follow (the sink sends both contracts'
events to the same path), so an event is valid when it validates under the model of its
``event_type`` in either contract; the check reports which contracts accept each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from codex_analytics.contract import EVENTS_PATH, DecodeError, event_from_json
from codex_analytics.contract.versions import CONTRACT_S, CONTRACTS

#: What :func:`event_contracts` reports for an event both contracts' models accept (most
#: Profile S types whose shape Profile J kept, such as ``codex_app_used``).
BOTH = "both"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    error: str
    detail: str

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "detail": self.detail})


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid upload: its events, and for each the contract whose model accepts it
    (``2026-06``, ``2026-08`` or :data:`BOTH`)."""

    events: list[Any]
    contracts: list[str]

    def by_contract(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for contract in self.contracts:
            counts[contract] = counts.get(contract, 0) + 1
        return counts


def event_contracts(event: Any) -> str:
    """The contract under whose model ``event`` validates (:data:`BOTH` when both do);
    raises :class:`DecodeError` naming each contract's reason when none does."""
    accepted: list[str] = []
    refused: list[tuple[str, DecodeError]] = []
    for contract in CONTRACTS:
        try:
            event_from_json(event, contract)
        except DecodeError as err:
            refused.append((contract, err))
        else:
            accepted.append(contract)
    if not accepted:
        detail = "; ".join(f"as {contract}: {err}" for contract, err in refused)
        raise DecodeError(refused[0][1].reason, "", detail)
    return accepted[0] if len(accepted) == 1 else BOTH


#: The ``Authorization`` schemes an upload may carry: a bearer token (ChatGPT logins, API
#: keys, personal access tokens) or an agent identity's signed assertion (2026-08).
AUTH_SCHEMES = frozenset({"Bearer", "AgentAssertion"})


def check_request(
    method: str, path: str, headers: dict[str, str], body: bytes, *, require_auth: bool = True
) -> Refusal | Accepted:
    """The batch's events when the request is a valid analytics upload, else why not.
    ``headers`` has lower-cased names."""
    if method != "POST" or not path.endswith(EVENTS_PATH):
        return Refusal(404, "not_found", f"POST …{EVENTS_PATH} is the only upload path")
    account = headers.get("chatgpt-account-id", "").strip()
    if require_auth:
        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme not in AUTH_SCHEMES or not credential.strip():
            return Refusal(
                401,
                "unauthorized",
                "missing 'Authorization: Bearer <token>' (or 'AgentAssertion <assertion>')",
            )
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return Refusal(415, "unsupported_media_type", "Content-Type must be application/json")
    if headers.get("content-encoding", "").lower() == "gzip":
        import gzip

        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            return Refusal(400, "bad_request", "the gzip body does not decompress")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        return Refusal(400, "bad_request", f"not JSON: {err.msg}")
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        return Refusal(400, "bad_request", 'the body must be {"events": [...]}')
    events: list[Any] = document["events"]
    if not events:
        return Refusal(400, "bad_request", "an upload holds at least one event")
    contracts: list[str] = []
    for index, event in enumerate(events):
        try:
            contracts.append(event_contracts(event))
        except DecodeError as err:
            return Refusal(400, "invalid_event", str(err.within(index).within("events")))
    # 2026-06 sends only ChatGPT logins, always with their account; 2026-08 may send an
    # API key's events without one (profile-j.md §6). A body of 2026-06 events must
    # name it.
    if require_auth and not account and CONTRACT_S in contracts:
        return Refusal(401, "unauthorized", "missing chatgpt-account-id")
    return Accepted(events, contracts)
