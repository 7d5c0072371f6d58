"""``PluginTelemetryMetadata`` in the wire form of a contract (one place for the client
and :class:`~producers.client.plugins.PluginsManager`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codex_analytics.contract.facts import PluginCapabilitySummary, PluginTelemetryMetadata
from codex_analytics.contract.schema import to_wire
from codex_analytics.contract.versions import CONTRACT_J, ContractId


def metadata_wire(
    contract: ContractId,
    *,
    plugin_id: str | None,
    remote_plugin_id: str | None,
    summary: PluginCapabilitySummary | Mapping[str, Any] | None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """``PluginTelemetryMetadata`` in the wire form of ``contract``. Profile J's capability
    summary has ``plugin_namespace`` after ``display_name``: the summary's own when it
    carries one, else ``namespace``; Profile S's has none."""
    return {
        "plugin_id": plugin_id,
        "remote_plugin_id": remote_plugin_id,
        "capability_summary": None
        if summary is None
        else _summary_wire(contract, summary, namespace),
    }


def _summary_wire(
    contract: ContractId,
    summary: PluginCapabilitySummary | Mapping[str, Any],
    namespace: str | None,
) -> dict[str, Any]:
    wire: dict[str, Any] = (
        dict(to_wire(summary)) if isinstance(summary, PluginCapabilitySummary) else dict(summary)
    )
    given_namespace = wire.pop("plugin_namespace", None)
    if contract != CONTRACT_J:
        return wire
    ordered: dict[str, Any] = {}
    for key, value in wire.items():
        ordered[key] = value
        if key == "display_name":
            ordered["plugin_namespace"] = (
                given_namespace if given_namespace is not None else namespace
            )
    return ordered


def metadata_in_contract(contract: ContractId, plugin: Any) -> Any:
    """A plugin argument of a ``track_*`` call in the client's contract: the Profile S
    model (what the manager's constructors return) becomes the Profile J wire form for a
    ``2026-08`` client (its summary gains ``plugin_namespace``, null: the model has
    none); anything else is taken as given."""
    if contract != CONTRACT_J or not isinstance(plugin, PluginTelemetryMetadata):
        return plugin
    return metadata_wire(
        contract,
        plugin_id=plugin.plugin_id,
        remote_plugin_id=plugin.remote_plugin_id,
        summary=plugin.capability_summary,
    )
