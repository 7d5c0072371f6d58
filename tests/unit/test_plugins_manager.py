"""PluginsManager: the single owner of plugin telemetry metadata (delivery.md §6)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.contract.facts import PluginCapabilitySummary
from producers import AnalyticsClient, PluginId, PluginIdError, PluginsManager, ProducerIdentity
from producers.client.plugins import capability_summary_from_root
from tests.factories import tracking
from tests.producer_helpers import MemoryTransport


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))


@pytest.fixture
def linear_root(tmp_path: Path) -> Path:
    root = tmp_path / "linear"
    write(root / ".codex-plugin" / "plugin.json", {"name": "linear", "version": "1.0.0"})
    (root / "skills" / "triage").mkdir(parents=True)
    write(
        root / ".mcp.json",
        {"mcpServers": {"zeta": {"command": "z"}, "alpha": {"url": "http://a"}, "bad": 3}},
    )
    write(
        root / ".app.json",
        {
            "apps": {
                "l": {"id": "connector_linear"},
                "blank": {"id": "  "},
                "again": {"id": "connector_linear"},
                "d": {"id": "drive"},
            }
        },
    )
    return root


def test_plugin_id_parses_at_the_last_at() -> None:
    assert PluginId.parse("my.plugin@market-1") == PluginId("my.plugin", "market-1")
    assert PluginId.parse("a@b").as_key() == "a@b"
    for bad in ["nomarket", "@m", "p@", "p@m@", "sp ace@m", "p@m.x"]:
        with pytest.raises(PluginIdError):
            PluginId.parse(bad)


def test_capability_summary_from_a_plugin_root(linear_root: Path) -> None:
    summary = capability_summary_from_root(PluginId("linear", "chatgpt-global"), linear_root)
    assert summary == PluginCapabilitySummary(
        config_name="linear@chatgpt-global",
        display_name="linear",
        description=None,
        has_skills=True,
        mcp_server_names=["alpha", "zeta"],
        app_connector_ids=["connector_linear", "drive"],
    )


def test_manifest_paths_replace_the_defaults(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write(
        root / ".claude-plugin" / "plugin.json",
        {
            "skills": ["./declared-but-missing"],
            "mcpServers": {"b": {"command": "x"}, "a": {"command": "y"}, "a2": {}},
            "apps": "./config/apps.json",
        },
    )
    write(root / "config" / "apps.json", {"apps": {"x": {"id": "connector_x"}}})
    write(root / ".app.json", {"apps": {"y": {"id": "ignored"}}})
    summary = capability_summary_from_root(PluginId("p", "m"), root)
    assert summary is not None
    assert summary.has_skills  # declared roots count even when missing (upstream)
    assert summary.mcp_server_names == ["a", "b"]
    assert summary.app_connector_ids == ["connector_x"]


def test_no_manifest_bad_manifest_or_unsafe_paths(tmp_path: Path) -> None:
    pid = PluginId("p", "m")
    assert capability_summary_from_root(pid, tmp_path / "absent") is None
    write(tmp_path / "bad" / ".codex-plugin" / "plugin.json", b"{not json")
    assert capability_summary_from_root(pid, tmp_path / "bad") is None
    write(tmp_path / "apps" / ".codex-plugin" / "plugin.json", {"apps": 3})
    assert capability_summary_from_root(pid, tmp_path / "apps") is None
    root = tmp_path / "unsafe"
    write(
        root / ".codex-plugin" / "plugin.json",
        {"skills": "../outside", "mcpServers": "/etc/x", "apps": "./"},
    )
    write(root / ".app.json", {"apps": {"a": {"id": "c1"}, "b": {"name": "no id"}}})
    summary = capability_summary_from_root(pid, root)
    assert summary is not None
    assert (summary.has_skills, summary.mcp_server_names, summary.app_connector_ids) == (
        False,
        [],
        [],
    )


async def test_every_event_path_builds_its_metadata_in_the_manager(linear_root: Path) -> None:
    manager = PluginsManager({"linear@chatgpt-global": linear_root})
    transport = MemoryTransport()
    client = AnalyticsClient(
        identity=ProducerIdentity("i"), transport=transport, contract="2026-06"
    )
    async with client:
        assert manager.track_installed(client, "linear@chatgpt-global")
        assert manager.track_installed(
            client, "linear@chatgpt-global", remote_plugin_id="plugins~Plugin_linear"
        )
        assert manager.track_enabled(client, "linear@chatgpt-global")
        assert manager.track_disabled(client, PluginId("linear", "chatgpt-global"))
        assert manager.track_uninstalled(client, "linear@chatgpt-global")
        assert manager.track_enabled(client, "sample@test")  # not installed: no summary
        summary = manager.telemetry_metadata_for_installed_plugin(
            "linear@chatgpt-global"
        ).capability_summary
        assert summary is not None
        assert manager.track_used(client, tracking(), summary)
        unparsable = PluginCapabilitySummary("not a key", "x", None, False, [], [])
        assert manager.track_used(client, tracking(), unparsable) is False
    facts = transport.facts()
    assert [f["payload"].get("state") for f in facts] == [
        "installed",
        "installed",
        "enabled",
        "disabled",
        "uninstalled",
        "enabled",
        None,
    ]
    plugins = [f["payload"]["plugin"] for f in facts]
    assert plugins[0]["remote_plugin_id"] is None
    assert plugins[1]["remote_plugin_id"] == "plugins~Plugin_linear"
    assert plugins[1]["plugin_id"] == "linear@chatgpt-global"
    assert plugins[0]["capability_summary"]["mcp_server_names"] == ["alpha", "zeta"]
    assert plugins[5] == {
        "plugin_id": "sample@test",
        "remote_plugin_id": None,
        "capability_summary": None,
    }
    assert plugins[6]["capability_summary"] == plugins[0]["capability_summary"]
    assert "plugin_name" not in plugins[0]  # derived fields never go on the wire
    for _, value in transport.records:
        decode_fact(value)


def test_the_five_constructors(linear_root: Path) -> None:
    manager = PluginsManager(lambda pid: linear_root if pid.plugin_name == "linear" else None)
    bare = manager.telemetry_metadata_for_plugin_id("linear@m")
    assert (bare.plugin_id, bare.remote_plugin_id, bare.capability_summary) == (
        "linear@m",
        None,
        None,
    )
    remote = manager.telemetry_metadata_for_plugin_id_with_remote_id("linear@m", "plugins~X")
    assert remote.remote_plugin_id == "plugins~X"
    assert remote.capability_summary is None
    installed = manager.telemetry_metadata_for_installed_plugin_with_remote_id("linear@m", "r")
    assert installed.capability_summary is not None
    assert installed.remote_plugin_id == "r"
    assert installed.capability_summary.config_name == "linear@m"
    assert manager.telemetry_metadata_for_installed_plugin("other@m").capability_summary is None
    assert (
        manager.telemetry_metadata_for_capability_summary(
            PluginCapabilitySummary("x@", "x", None, False, [], [])
        )
        is None
    )
    with pytest.raises(PluginIdError):
        manager.telemetry_metadata_for_plugin_id("broken")


def test_install_roots_follow_installs(linear_root: Path) -> None:
    manager = PluginsManager()
    assert manager.telemetry_metadata_for_installed_plugin("linear@m").capability_summary is None
    manager.set_install_root("linear@m", linear_root)
    assert (
        manager.telemetry_metadata_for_installed_plugin("linear@m").capability_summary is not None
    )
    manager.set_install_root("linear@m", None)
    assert manager.telemetry_metadata_for_installed_plugin("linear@m").capability_summary is None
