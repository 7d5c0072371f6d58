"""The auth gate applied to a batch: which of its events are sent, and why the others are not.

A batch holds one route's events, but its events may speak either contract (an instance
moved from ``2026-06`` to ``2026-08`` while its account's batch was open): each event is
gated by its origin's contract (:func:`sinks.auth.decide`), the route's credential
resolved once for all of them. Profile S events are sent or skipped as before; Profile
J events of an ``api_key`` route are filtered one by one. What is sent goes in one
request with one set of headers: those of the newest contract that admitted the batch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.versions import CONTRACT_S, ContractId

from .auth import (
    API_KEY_KIND,
    Admitted,
    Skipped,
    SkipReason,
    auth_kind,
    decide,
    may_send_with_api_key,
)
from .batching import SinkRecord
from .credentials import Credential


@dataclass(frozen=True, slots=True)
class GatePlan:
    """What the gate lets through of one batch."""

    #: The records to send, in their order (a subsequence of the batch's).
    send: tuple[SinkRecord, ...]
    #: The admission whose headers the request carries; None when no contract admitted
    #: the route (nothing is sent, unless the capture test switch opens the gate).
    admitted: Admitted | None
    #: Events not sent, by reason, in the order the reasons first came up.
    skipped: tuple[tuple[SkipReason, int], ...]
    #: The credential the plan was made with (a delivery attempt whose credential is
    #: still this very object keeps the plan).
    credential: Credential | None = None

    @property
    def skipped_events(self) -> int:
        return sum(count for _, count in self.skipped)


def plan_batch(
    records: list[SinkRecord],
    route: AuthRoute,
    credential: Credential | None,
    *,
    ignore_gate: bool = False,
) -> GatePlan:
    """Gate ``records`` (one route's, all decoded) with the route's resolved credential.

    ``ignore_gate`` (the capture test switch) opens what the gate would skip for want of
    a credential or a sendable kind; the API-key filter still applies, since it is what
    the route's kind allows to be sent, not a missing credential.

    The common case costs one pass over the batch's contracts and nothing per event:
    when every contract in the batch admits the route (or the gate is open) and no
    event can be filtered (the route's kind is not ``api_key``, or the batch is all
    Profile S), everything is sent as it is."""
    kind = auth_kind(route, credential)
    contracts = {r.origin.contract_id if r.origin is not None else CONTRACT_S for r in records}
    decisions = {contract: decide(contract, route, credential) for contract in contracts}
    if kind != API_KEY_KIND or contracts == {CONTRACT_S}:
        admitting = [c for c, d in decisions.items() if isinstance(d, Admitted)]
        if ignore_gate or len(admitting) == len(decisions):
            admitted = decisions[max(admitting)] if admitting else None
            assert admitted is None or isinstance(admitted, Admitted)
            return GatePlan(tuple(records), admitted, (), credential)
    return _plan_each(records, route, credential, kind, decisions, ignore_gate=ignore_gate)


def _plan_each(
    records: list[SinkRecord],
    route: AuthRoute,
    credential: Credential | None,
    kind: str | None,
    decisions: dict[ContractId, Admitted | Skipped],
    *,
    ignore_gate: bool,
) -> GatePlan:
    """:func:`plan_batch` event by event: some are skipped or filtered."""
    send: list[SinkRecord] = []
    skipped: Counter[SkipReason] = Counter()
    sent_by: dict[ContractId, Admitted] = {}
    for record in records:
        contract = record.origin.contract_id if record.origin is not None else CONTRACT_S
        decision = decisions.get(contract)
        if decision is None:
            decision = decisions[contract] = decide(contract, route, credential)
        if isinstance(decision, Skipped) and not ignore_gate:
            skipped[decision.reason] += 1
            continue
        if (
            contract != CONTRACT_S
            and kind == API_KEY_KIND
            and not may_send_with_api_key(record.event_type, record.event_json)
        ):
            skipped[SkipReason.API_KEY_FILTERED] += 1
            continue
        send.append(record)
        if isinstance(decision, Admitted):
            sent_by[contract] = decision
    # One request, one set of headers: the newest contract's admission, whatever the
    # order of the records (a credential that both contracts admit may authenticate
    # differently under each, e.g. an agent identity that also holds a token).
    admitted = sent_by[max(sent_by)] if sent_by else None
    return GatePlan(tuple(send), admitted, tuple(skipped.items()), credential)
