"""The checklists of upstream's plugin analytics smoke workflows, as pure functions over
the lines of a capture file, for both contracts.

Contract ``2026-06`` (delivery.md §7):
§7.1 (``plugin-analytics-smoke``): exactly one ``codex_plugin_disabled``, ``_enabled``
and ``_used`` among the events whose ``plugin_id`` is the local id, each naming the
plugin and its marketplace; the used event with its capability, turn and model fields.
§7.2 (``plugin-analytics-mutation-smoke``): exactly one ``codex_plugin_installed`` whose
``plugin_id`` is the backend id of a remote install.

Contract ``2026-08`` (profile-j.md §6 "Smoke", upstream
``app-server-test-client/src/plugin_analytics_{smoke,capture}.rs``): the local smoke
selects by the local ``plugin_id`` and also requires ``remote_plugin_id`` to be the
plugin's backend id; the mutation smoke selects by ``remote_plugin_id`` and requires
exactly one ``codex_plugin_installed`` and one ``codex_plugin_uninstalled``, each with the
local ``plugin_id``, the name and marketplace, and non-null capability fields.

A plugin event's contract shows in its shape: only ``2026-08`` events carry the
``remote_plugin_id`` key (PR #29495), so one capture can hold both and each checklist
reads its own contract's events (:func:`plugin_event_contract`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S, ContractId

LOCAL_REQUIRED = ("codex_plugin_disabled", "codex_plugin_enabled", "codex_plugin_used")
USED_NON_NULL = (
    "has_skills",
    "mcp_server_count",
    "connector_ids",
    "mcp_server_names",
    "thread_id",
    "turn_id",
    "model_slug",
)
INSTALLED_NON_NULL = ("has_skills", "mcp_server_count", "connector_ids", "product_client_id")
#: The event types the ``2026-08`` mutation smoke requires, one each.
MUTATION_REQUIRED = ("codex_plugin_installed", "codex_plugin_uninstalled")
SMOKE_MODEL_SLUG = "plugin-analytics-smoke"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"  [{mark}] {self.name}" + (f": {self.detail}" if self.detail else "")


def capture_events(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], list[Check]]:
    """Every event of the capture; a line that is not JSON or has no ``events`` array is
    a failed check (upstream fails the run on it)."""
    events: list[dict[str, Any]] = []
    bad: list[str] = []
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(f"line {number} is not JSON")
            continue
        batch = body.get("events") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            bad.append(f"line {number} has no events array")
            continue
        events.extend(e for e in batch if isinstance(e, dict))
    check = Check(
        "every capture line is JSON with an events array",
        not bad,
        "; ".join(bad[:3]) if bad else f"{count} lines",
    )
    return events, [check]


def _params(event: dict[str, Any]) -> dict[str, Any]:
    params = event.get("event_params")
    return params if isinstance(params, dict) else {}


def plugin_event_contract(event: dict[str, Any]) -> ContractId:
    """The contract of a plugin event: ``2026-08`` events carry ``remote_plugin_id``."""
    return CONTRACT_J if "remote_plugin_id" in _params(event) else CONTRACT_S


def contracts_in(events: Sequence[dict[str, Any]]) -> set[ContractId]:
    """The contracts of the capture's plugin events."""
    return {
        plugin_event_contract(e)
        for e in events
        if str(e.get("event_type", "")).startswith("codex_plugin_")
    }


def _matching(
    events: Sequence[dict[str, Any]],
    plugin_id: str,
    *,
    contract: ContractId = CONTRACT_S,
    key: str = "plugin_id",
) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if plugin_event_contract(e) == contract and _params(e).get(key) == plugin_id
    ]


def _exactly_one(
    events: Sequence[dict[str, Any]], event_type: str, plugin_id: str, key: str = "plugin_id"
) -> tuple[Check, dict[str, Any] | None]:
    found = [e for e in events if e.get("event_type") == event_type]
    check = Check(
        f"exactly one {event_type} with {key} {plugin_id}",
        len(found) == 1,
        "" if len(found) == 1 else f"found {len(found)}",
    )
    return check, found[0] if len(found) == 1 else None


def _identity_checks(
    event_type: str,
    params: dict[str, Any],
    plugin_id: str,
    plugin_name: str,
    marketplace_name: str,
) -> list[Check]:
    return [
        _equals(event_type, params, "plugin_id", plugin_id),
        _equals(event_type, params, "plugin_name", plugin_name),
        _equals(event_type, params, "marketplace_name", marketplace_name),
    ]


def _equals(event_type: str, params: dict[str, Any], key: str, want: object) -> Check:
    got = params.get(key)
    return Check(
        f"{event_type}.{key} == {want!r}", got == want, "" if got == want else f"got {got!r}"
    )


def _non_null(event_type: str, params: dict[str, Any], keys: Sequence[str]) -> Check:
    missing = [k for k in keys if params.get(k) is None]
    return Check(
        f"{event_type}: {', '.join(keys)} present and non-null",
        not missing,
        f"null or missing: {', '.join(missing)}" if missing else "",
    )


def _checklist(
    events: Sequence[dict[str, Any]],
    *,
    contract: ContractId,
    selected_by: str,
    selector: str,
    required: Sequence[str],
    plugin_id: str,
    plugin_name: str,
    marketplace_name: str,
    more_checks: Callable[[str, dict[str, Any]], list[Check]],
) -> list[Check]:
    """What every smoke checks: among the ``contract`` events whose ``selected_by`` key
    is ``selector``, exactly one of each ``required`` type, naming the plugin and its
    marketplace, then ``more_checks(event_type, params)`` of the smoke."""
    checks: list[Check] = []
    mine = _matching(events, selector, contract=contract, key=selected_by)
    for event_type in required:
        check, event = _exactly_one(mine, event_type, selector, key=selected_by)
        checks.append(check)
        if event is None:
            continue
        params = _params(event)
        checks.extend(
            _identity_checks(event_type, params, plugin_id, plugin_name, marketplace_name)
        )
        checks.extend(more_checks(event_type, params))
    return checks


def _used_checks(event_type: str, params: dict[str, Any], model_slug: str) -> list[Check]:
    """The used event's capability, turn and model fields."""
    if event_type != "codex_plugin_used":
        return []
    return [
        _non_null(event_type, params, USED_NON_NULL),
        _equals(event_type, params, "model_slug", model_slug),
    ]


def local_plugin_checklist(
    events: Sequence[dict[str, Any]],
    *,
    plugin_id: str,
    plugin_name: str,
    marketplace_name: str,
    model_slug: str = SMOKE_MODEL_SLUG,
) -> list[Check]:
    """§7.1 over the events of a capture (see :func:`capture_events`)."""
    return _checklist(
        events,
        contract=CONTRACT_S,
        selected_by="plugin_id",
        selector=plugin_id,
        required=LOCAL_REQUIRED,
        plugin_id=plugin_id,
        plugin_name=plugin_name,
        marketplace_name=marketplace_name,
        more_checks=lambda event_type, params: _used_checks(event_type, params, model_slug),
    )


def remote_install_checklist(
    events: Sequence[dict[str, Any]], *, backend_id: str, plugin_name: str, marketplace_name: str
) -> list[Check]:
    """§7.2 over the events of a capture: the install event carries the backend id."""
    return _checklist(
        events,
        contract=CONTRACT_S,
        selected_by="plugin_id",
        selector=backend_id,
        required=("codex_plugin_installed",),
        plugin_id=backend_id,
        plugin_name=plugin_name,
        marketplace_name=marketplace_name,
        more_checks=lambda event_type, params: [_non_null(event_type, params, INSTALLED_NON_NULL)],
    )


def local_plugin_checklist_j(
    events: Sequence[dict[str, Any]],
    *,
    plugin_id: str,
    remote_plugin_id: str,
    plugin_name: str,
    marketplace_name: str,
    model_slug: str = SMOKE_MODEL_SLUG,
) -> list[Check]:
    """The ``2026-08`` local smoke: selected by the local ``plugin_id``; each of the
    three events also names the plugin's backend id."""
    return _checklist(
        events,
        contract=CONTRACT_J,
        selected_by="plugin_id",
        selector=plugin_id,
        required=LOCAL_REQUIRED,
        plugin_id=plugin_id,
        plugin_name=plugin_name,
        marketplace_name=marketplace_name,
        more_checks=lambda event_type, params: [
            _equals(event_type, params, "remote_plugin_id", remote_plugin_id),
            *_used_checks(event_type, params, model_slug),
        ],
    )


def mutation_checklist_j(
    events: Sequence[dict[str, Any]],
    *,
    backend_id: str,
    plugin_id: str,
    plugin_name: str,
    marketplace_name: str,
) -> list[Check]:
    """The ``2026-08`` mutation smoke: selected by ``remote_plugin_id`` == the backend
    id; exactly one install and one uninstall, each with the local ``plugin_id``."""
    return _checklist(
        events,
        contract=CONTRACT_J,
        selected_by="remote_plugin_id",
        selector=backend_id,
        required=MUTATION_REQUIRED,
        plugin_id=plugin_id,
        plugin_name=plugin_name,
        marketplace_name=marketplace_name,
        more_checks=lambda event_type, params: [
            _equals(event_type, params, "remote_plugin_id", backend_id),
            _non_null(event_type, params, INSTALLED_NON_NULL),
        ],
    )


def first_failure(checks: Sequence[Check]) -> Check | None:
    return next((c for c in checks if not c.ok), None)
