"""PluginsManager under contract 2026-08 (profile-j.md §2, §6): remote ids resolved from
the installed-plugins snapshot, else the persisted remote-install record (upstream
``core-plugins``), metadata with a nullable local id and ``plugin_namespace``, remote
uninstall with the backend's summary as fallback, install failed with what is known."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.contract.facts import PluginCapabilitySummary
from producers import AnalyticsClient, PluginsManager, ProducerIdentity, RemoteInstalledPlugin
from producers.client.plugins import REMOTE_INSTALL_RECORD, PluginId, active_plugin_version
from tests.producer_helpers import MemoryTransport

REMOTE_KEY = "linear@openai-curated-remote"
TRACKING = {"model_slug": "gpt-5", "thread_id": "t", "turn_id": "u", "product_client_id": "x"}


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))


def install(cache: Path, key: str, record: object | None = None, version: str = "local") -> Path:
    """A plugin installed in the plugins cache as upstream's store lays it out, with its
    remote-install record when given."""
    name, _, marketplace = key.rpartition("@")
    root = cache / marketplace / name / version
    write(root / ".codex-plugin" / "plugin.json", {"name": name, "version": "1.0.0"})
    (root / "skills").mkdir()
    if record is not None:
        write(cache / marketplace / name / REMOTE_INSTALL_RECORD, record)
    return root


def record(remote_plugin_id: str, schema_version: int = 1) -> dict[str, Any]:
    return {"schema_version": schema_version, "remote_plugin_id": remote_plugin_id}


def published(transport: MemoryTransport) -> list[dict[str, Any]]:
    facts = transport.facts()
    for fact in facts:
        assert decode_fact(orjson.dumps(fact)).contract == "2026-08"
    return facts


def test_the_snapshot_answers_first_then_the_persisted_record_then_none(tmp_path: Path) -> None:
    cache = tmp_path / "plugins" / "cache"
    install(cache, REMOTE_KEY, record("  plugins~Plugin_linear  "))
    manager = PluginsManager(plugins_cache_root=cache)
    # No snapshot loaded: the record beside the install (trimmed).
    assert manager.remote_plugin_id_for(REMOTE_KEY) == "plugins~Plugin_linear"
    manager.set_remote_installed(
        [
            RemoteInstalledPlugin("linear", "openai-curated-remote", "plugins~Snapshot"),
            RemoteInstalledPlugin("linear", "openai-curated-remote", "plugins~Later"),
            RemoteInstalledPlugin("bad name", "openai-curated-remote", "plugins~Bad"),
        ]
    )
    assert manager.remote_plugin_id_for(REMOTE_KEY) == "plugins~Snapshot"  # first entry wins
    # A loaded snapshot is the whole answer: a plugin missing from it has no remote id,
    # even with a record on disk (upstream ``remote_plugin_id_for``).
    manager.set_remote_installed([])
    assert manager.remote_plugin_id_for(REMOTE_KEY) is None
    manager.set_remote_installed(None)
    assert manager.remote_plugin_id_for(REMOTE_KEY) == "plugins~Plugin_linear"
    assert PluginsManager().remote_plugin_id_for(REMOTE_KEY) is None  # no cache: none


@pytest.mark.parametrize(
    ("key", "doc", "installed"),
    [
        ("linear@openai-curated", record("plugins~X"), True),  # not a remote marketplace
        (REMOTE_KEY, record("plugins~X"), False),  # no installed version
        (REMOTE_KEY, record("plugins~X", schema_version=2), True),
        (REMOTE_KEY, {"schema_version": True, "remote_plugin_id": "plugins~X"}, True),
        (REMOTE_KEY, {"schema_version": 1.0, "remote_plugin_id": "plugins~X"}, True),
        (REMOTE_KEY, record("   "), True),
        (REMOTE_KEY, b"{not json", True),
        (REMOTE_KEY, [1], True),
    ],
)
def test_a_record_counts_only_for_an_installed_remote_plugin_and_in_its_one_form(
    tmp_path: Path, key: str, doc: object, installed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    if installed:
        install(cache, key, doc)
    else:
        name, _, marketplace = key.rpartition("@")
        write(cache / marketplace / name / REMOTE_INSTALL_RECORD, doc)
    with caplog.at_level(logging.WARNING, "producers.client.plugins"):
        assert PluginsManager(plugins_cache_root=cache).remote_plugin_id_for(key) is None


def test_every_constructor_resolves_the_remote_id_unless_one_is_given(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = install(cache, REMOTE_KEY, record("plugins~Plugin_linear"))
    manager = PluginsManager({REMOTE_KEY: root}, plugins_cache_root=cache)
    assert manager.telemetry_metadata_for_plugin_id(REMOTE_KEY).remote_plugin_id == (
        "plugins~Plugin_linear"
    )
    installed = manager.telemetry_metadata_for_installed_plugin(REMOTE_KEY)
    assert installed.remote_plugin_id == "plugins~Plugin_linear"
    assert installed.capability_summary is not None
    given = manager.telemetry_metadata_for_installed_plugin_with_remote_id(REMOTE_KEY, "plugins~B")
    assert (given.plugin_id, given.remote_plugin_id) == (REMOTE_KEY, "plugins~B")
    summary = PluginCapabilitySummary(REMOTE_KEY, "linear", None, True, [], [])
    used = manager.telemetry_metadata_for_capability_summary(summary)
    assert used is not None
    assert used.remote_plugin_id == "plugins~Plugin_linear"


async def test_plugin_events_carry_the_local_key_and_the_namespace_under_2026_08(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    root = install(cache, REMOTE_KEY, record("plugins~Plugin_linear"))
    manager = PluginsManager({REMOTE_KEY: root}, plugins_cache_root=cache)
    transport = MemoryTransport()
    async with AnalyticsClient(identity=ProducerIdentity("j"), transport=transport) as client:
        assert manager.track_installed(client, REMOTE_KEY, remote_plugin_id="plugins~Backend")
        assert manager.track_enabled(client, REMOTE_KEY)
        assert manager.track_used(
            client,
            TRACKING,
            {
                "config_name": REMOTE_KEY,
                "display_name": "Linear",
                "plugin_namespace": "linear-ns",
                "description": None,
                "has_skills": True,
                "mcp_server_names": [],
                "app_connector_ids": [],
            },
        )
        await client.flush()
    installed, enabled, used, _ = published(transport)
    assert installed["payload"]["plugin"]["plugin_id"] == REMOTE_KEY  # never the remote id
    assert installed["payload"]["plugin"]["remote_plugin_id"] == "plugins~Backend"
    assert enabled["payload"]["plugin"]["remote_plugin_id"] == "plugins~Plugin_linear"
    summary = installed["payload"]["plugin"]["capability_summary"]
    assert list(summary) == [
        "config_name",
        "display_name",
        "plugin_namespace",
        "description",
        "has_skills",
        "mcp_server_names",
        "app_connector_ids",
    ]
    assert (summary["display_name"], summary["plugin_namespace"]) == ("linear", "linear")
    assert used["payload"]["plugin"]["capability_summary"]["plugin_namespace"] == "linear-ns"
    assert used["payload"]["plugin"]["remote_plugin_id"] == "plugins~Plugin_linear"


async def test_plugin_facts_of_a_2026_06_client_are_unchanged(tmp_path: Path) -> None:
    root = install(tmp_path / "cache", "linear@m")
    manager = PluginsManager({"linear@m": root})
    transport = MemoryTransport()
    client = AnalyticsClient(
        identity=ProducerIdentity("s"), transport=transport, contract="2026-06"
    )
    async with client:
        assert manager.track_installed(client, "linear@m")
        assert not manager.track_install_failed(client, plugin_id="linear@m", error_type="x")
        await client.flush()
    (fact,) = transport.facts()
    assert "plugin_namespace" not in fact["payload"]["plugin"]["capability_summary"]
    decode_fact(orjson.dumps(fact))


FALLBACK = {
    "config_name": REMOTE_KEY,
    "display_name": "Linear",
    "description": "Issues",
    "has_skills": True,
    "mcp_server_names": ["linear"],
    "app_connector_ids": ["connector_linear"],
}


async def test_remote_uninstall_names_local_and_remote_ids_with_the_fallback_summary(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    root = install(cache, REMOTE_KEY)
    transport = MemoryTransport()
    async with AnalyticsClient(identity=ProducerIdentity("j"), transport=transport) as client:
        # Installed here: the summary is read from the local install.
        local = PluginsManager({REMOTE_KEY: root}, plugins_cache_root=cache)
        assert local.track_remote_uninstalled(client, REMOTE_KEY, "plugins~Plugin_linear", FALLBACK)
        # Not installed here: the backend's summary, named after the plugin.
        remote_only = PluginsManager(plugins_cache_root=tmp_path / "empty-cache")
        assert remote_only.track_remote_uninstalled(
            client, REMOTE_KEY, "plugins~Plugin_linear", FALLBACK
        )
        await client.flush()
    from_root, from_backend, _ = published(transport)
    for fact in (from_root, from_backend):
        assert fact["payload"]["state"] == "uninstalled"
        assert fact["payload"]["plugin"]["plugin_id"] == REMOTE_KEY
        assert fact["payload"]["plugin"]["remote_plugin_id"] == "plugins~Plugin_linear"
    assert from_root["payload"]["plugin"]["capability_summary"]["display_name"] == "linear"
    assert from_backend["payload"]["plugin"]["capability_summary"] == {
        "config_name": REMOTE_KEY,
        "display_name": "Linear",
        "plugin_namespace": "linear",
        "description": "Issues",
        "has_skills": True,
        "mcp_server_names": ["linear"],
        "app_connector_ids": ["connector_linear"],
    }


async def test_install_failed_carries_what_is_known(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    install(cache, REMOTE_KEY, record("plugins~Persisted"))
    manager = PluginsManager(plugins_cache_root=cache)
    transport = MemoryTransport()
    async with AnalyticsClient(identity=ProducerIdentity("j"), transport=transport) as client:
        # Failed before the backend's detail named the plugin: only the backend id.
        assert manager.track_install_failed(
            client,
            plugin_id=None,
            remote_plugin_id="plugins~Plugin_0",
            error_type="remote_catalog_unexpected_status",
        )
        # A local install that failed: the local key and its resolved remote id.
        assert manager.track_install_failed(
            client,
            plugin_id=REMOTE_KEY,
            error_type="store",
            sub_error_type="failed_to_copy",
            source="external_agent_migration",
        )
        await client.flush()
    before_detail, local, _ = published(transport)
    assert before_detail["payload"] == {
        "plugin": {
            "plugin_id": None,
            "remote_plugin_id": "plugins~Plugin_0",
            "capability_summary": None,
        },
        "source": "manual",
        "error_type": "remote_catalog_unexpected_status",
        "sub_error_type": None,
    }
    assert local["payload"]["plugin"] == {
        "plugin_id": REMOTE_KEY,
        "remote_plugin_id": "plugins~Persisted",
        "capability_summary": None,
    }
    assert (local["payload"]["source"], local["payload"]["sub_error_type"]) == (
        "external_agent_migration",
        "failed_to_copy",
    )


async def test_a_2026_06_client_resolves_no_remote_id_and_reports_the_local_key(
    tmp_path: Path,
) -> None:
    # delivery.md §6: Profile S's constructors give no remote id; only a remote install
    # names its backend id (then its plugin_id).
    cache = tmp_path / "cache"
    root = install(cache, REMOTE_KEY, record("plugins~Plugin_linear"))
    manager = PluginsManager(
        {REMOTE_KEY: root},
        plugins_cache_root=cache,
        remote_installed=[RemoteInstalledPlugin("linear", "openai-curated-remote", "plugins~X")],
    )
    transport = MemoryTransport()
    identity = ProducerIdentity("s")
    async with AnalyticsClient(identity=identity, transport=transport, contract="2026-06") as c:
        assert manager.track_enabled(c, REMOTE_KEY)
        summary = manager.telemetry_metadata_for_installed_plugin(REMOTE_KEY).capability_summary
        assert summary is not None
        assert manager.track_used(c, TRACKING | {"product_client_id": None}, summary)
        assert manager.track_installed(c, REMOTE_KEY, remote_plugin_id="plugins~Given")
    plugins = [f["payload"]["plugin"] for f in transport.facts()]
    assert [p["remote_plugin_id"] for p in plugins] == [None, None, "plugins~Given"]
    assert {p["plugin_id"] for p in plugins} == {REMOTE_KEY}
    for fact in transport.facts():
        assert decode_fact(orjson.dumps(fact)).contract == "2026-06"


async def test_a_2026_08_client_takes_the_managers_own_metadata_objects(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = install(cache, REMOTE_KEY, record("plugins~Plugin_linear"))
    manager = PluginsManager({REMOTE_KEY: root}, plugins_cache_root=cache)
    metadata = manager.telemetry_metadata_for_installed_plugin(REMOTE_KEY)
    transport = MemoryTransport()
    async with AnalyticsClient(identity=ProducerIdentity("j"), transport=transport) as client:
        assert client.track_plugin_installed(metadata)
        assert client.track_plugin_used(TRACKING, metadata)
        assert client.track_plugin_install_failed(metadata, "manual", "network")
    facts = published(transport)
    assert [f["kind"] for f in facts] == [
        "plugin_state_changed",
        "plugin_used",
        "plugin_install_failed",
        "flush",
    ]
    summary = facts[0]["payload"]["plugin"]["capability_summary"]
    assert list(summary)[:3] == ["config_name", "display_name", "plugin_namespace"]


def test_an_install_failed_with_an_unknown_source_is_a_clear_error() -> None:
    client = AnalyticsClient(transport=MemoryTransport())
    with pytest.raises(ValueError, match="install source must be one of"):
        PluginsManager().track_install_failed(
            client, plugin_id=REMOTE_KEY, error_type="network", source="bogus"
        )


@pytest.mark.parametrize(
    ("versions", "active"),
    [
        (["1.0.0", "local", "2.0.0"], "local"),
        (["1.2.0", "1.10.0", "1.9.9"], "1.10.0"),  # semver, not text order
        (["2.0.0-rc.1", "2.0.0-beta", "1.9.0"], "2.0.0-rc.1"),
        (["2.0.0-rc.1", "2.0.0"], "2.0.0"),  # a release above its pre-releases
        (["alpha", "beta"], "beta"),  # not semver: by name
        ([], None),
    ],
)
def test_the_active_version_is_upstreams(
    tmp_path: Path, versions: list[str], active: str | None
) -> None:
    base = tmp_path / "linear"
    base.mkdir()
    for version in versions:
        (base / version).mkdir()
    (base / REMOTE_INSTALL_RECORD).write_text("{}")  # a file is no version
    assert active_plugin_version(base) == active


def test_a_summary_comes_from_the_plugins_cache_when_no_root_is_given(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    install(cache, REMOTE_KEY, version="1.0.0")
    newest = install(cache, REMOTE_KEY, version="1.2.0")
    manager = PluginsManager(plugins_cache_root=cache)
    metadata = manager.telemetry_metadata_for_installed_plugin(REMOTE_KEY)
    assert metadata.capability_summary is not None
    assert manager.install_root(PluginId.parse(REMOTE_KEY)) == newest
