"""The plugin smoke checklists (delivery.md §7.1, §7.2) on hand-made captures."""

from __future__ import annotations

from typing import Any

import orjson

from codex_analytics.devtools.smoke import (
    SMOKE_MODEL_SLUG,
    capture_events,
    contracts_in,
    first_failure,
    local_plugin_checklist,
    local_plugin_checklist_j,
    mutation_checklist_j,
    remote_install_checklist,
)

PID = "sample@test"


def _event(event_type: str, **params: Any) -> dict[str, Any]:
    base = {"plugin_id": PID, "plugin_name": "sample", "marketplace_name": "test"}
    return {"event_type": event_type, "event_params": {**base, **params}}


USED = {
    "has_skills": True,
    "mcp_server_count": 1,
    "connector_ids": ["calendar"],
    "mcp_server_names": ["mcp-1"],
    "thread_id": "th",
    "turn_id": "tu",
    "model_slug": SMOKE_MODEL_SLUG,
}


def _local(events: list[dict[str, Any]]) -> list[Any]:
    return local_plugin_checklist(
        events, plugin_id=PID, plugin_name="sample", marketplace_name="test"
    )


def test_local_checklist_passes_on_the_three_events() -> None:
    events = [
        _event("codex_plugin_disabled"),
        _event("codex_plugin_enabled"),
        _event("codex_plugin_used", **USED),
    ]
    assert first_failure(_local(events)) is None


def test_used_needs_every_field_non_null_and_the_smoke_model() -> None:
    base = [_event("codex_plugin_disabled"), _event("codex_plugin_enabled")]
    failed = first_failure(
        _local([*base, _event("codex_plugin_used", **{**USED, "turn_id": None})])
    )
    assert failed is not None
    assert "turn_id" in failed.detail
    failed = first_failure(
        _local([*base, _event("codex_plugin_used", **{**USED, "model_slug": "gpt-5"})])
    )
    assert failed is not None
    assert "model_slug" in failed.name


def test_other_plugins_events_do_not_count_and_names_must_match() -> None:
    other = _event("codex_plugin_disabled", plugin_id="other@test")
    events = [other, _event("codex_plugin_enabled"), _event("codex_plugin_used", **USED)]
    failed = first_failure(_local(events))
    assert failed is not None
    assert failed.name.startswith("exactly one codex_plugin_disabled")
    renamed = [_event("codex_plugin_disabled", marketplace_name="elsewhere"), *events[1:]]
    failed = first_failure(_local(renamed))
    assert failed is not None
    assert "marketplace_name" in failed.name


def test_remote_install_needs_the_backend_id() -> None:
    installed = _event(
        "codex_plugin_installed",
        plugin_id="plugins~X",
        has_skills=False,
        mcp_server_count=0,
        connector_ids=[],
        product_client_id="codex_cli_rs",
    )
    ok = remote_install_checklist(
        [installed], backend_id="plugins~X", plugin_name="sample", marketplace_name="test"
    )
    assert first_failure(ok) is None
    local_id = {**installed, "event_params": {**installed["event_params"], "plugin_id": PID}}
    failed = first_failure(
        remote_install_checklist(
            [local_id], backend_id="plugins~X", plugin_name="sample", marketplace_name="test"
        )
    )
    assert failed is not None
    assert "found 0" in failed.detail


def test_capture_lines_must_be_json_with_an_events_array() -> None:
    events, checks = capture_events([orjson.dumps({"events": [_event("x")]}), b"{}", b"nope", b""])
    assert len(events) == 1
    assert not checks[0].ok
    assert "line 2 has no events array" in checks[0].detail
    assert "line 3 is not JSON" in checks[0].detail


# -- contract 2026-08 (profile-j.md §6 "Smoke") -------------------------------------------

REMOTE = "plugins~Plugin_sample"
CAPABILITIES = {
    "has_skills": True,
    "mcp_server_count": 1,
    "connector_ids": ["calendar"],
    "product_client_id": "codex_cli_rs",
}


def _event_j(event_type: str, **params: Any) -> dict[str, Any]:
    base = {"plugin_id": PID, "remote_plugin_id": REMOTE, "plugin_name": "sample"}
    return {
        "event_type": event_type,
        "event_params": {**base, "marketplace_name": "test", **CAPABILITIES, **params},
    }


def _local_j(events: list[dict[str, Any]]) -> list[Any]:
    return local_plugin_checklist_j(
        events,
        plugin_id=PID,
        remote_plugin_id=REMOTE,
        plugin_name="sample",
        marketplace_name="test",
    )


def _mutation_j(events: list[dict[str, Any]]) -> list[Any]:
    return mutation_checklist_j(
        events, backend_id=REMOTE, plugin_id=PID, plugin_name="sample", marketplace_name="test"
    )


J_LOCAL = [
    _event_j("codex_plugin_disabled"),
    _event_j("codex_plugin_enabled"),
    _event_j("codex_plugin_used", **USED),
]
J_MUTATION = [_event_j("codex_plugin_installed"), _event_j("codex_plugin_uninstalled")]


def test_j_local_checklist_passes_and_needs_the_backend_id_on_each_event() -> None:
    assert first_failure(_local_j(J_LOCAL)) is None
    without_remote = [*J_LOCAL[:2], _event_j("codex_plugin_used", **USED, remote_plugin_id=None)]
    failed = first_failure(_local_j(without_remote))
    assert failed is not None
    assert failed.name == "codex_plugin_used.remote_plugin_id == 'plugins~Plugin_sample'"


def test_j_mutation_checklist_selects_by_remote_id_and_needs_one_of_each() -> None:
    assert first_failure(_mutation_j(J_MUTATION)) is None
    # The backend id in plugin_id (the 2026-06 shape of a remote install) is wrong here.
    backend_as_id = _event_j("codex_plugin_installed", plugin_id=REMOTE)
    failed = first_failure(_mutation_j([backend_as_id, J_MUTATION[1]]))
    assert failed is not None
    assert "plugin_id" in failed.name
    failed = first_failure(_mutation_j([*J_MUTATION, J_MUTATION[1]]))  # a duplicate
    assert failed is not None
    assert failed.name == "exactly one codex_plugin_uninstalled with remote_plugin_id " + REMOTE
    assert failed.detail == "found 2"
    failed = first_failure(
        _mutation_j([J_MUTATION[0], _event_j("codex_plugin_uninstalled", product_client_id=None)])
    )
    assert failed is not None
    assert "product_client_id" in failed.detail


def test_each_contracts_checklist_reads_only_its_own_events() -> None:
    s_local = [
        _event("codex_plugin_disabled"),
        _event("codex_plugin_enabled"),
        _event("codex_plugin_used", **USED),
    ]
    both = s_local + J_LOCAL
    assert contracts_in(both) == {"2026-06", "2026-08"}
    assert contracts_in(s_local) == {"2026-06"}
    # Together in one capture: neither contract counts the other's events twice.
    assert first_failure(_local(both)) is None
    assert first_failure(_local_j(both)) is None
    # Alone, the other contract's events do not satisfy a checklist.
    assert first_failure(_local_j(s_local)) is not None
    assert first_failure(_local(J_LOCAL)) is not None
