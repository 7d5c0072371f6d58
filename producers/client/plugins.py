"""Plugin telemetry metadata, built in one place (upstream PR #27102, ``delivery.md`` §6).

:class:`PluginsManager` is the only code that makes a
:class:`~codex_analytics.contract.facts.PluginTelemetryMetadata`: for a bare id, an id
with the backend's remote id, an installed plugin (capability summary read from its
install root) and a capability summary (plugin used). Its ``track_*`` helpers run each
upstream event path end to end, so callers never assemble metadata themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from codex_analytics.contract.facts import PluginCapabilitySummary, PluginTelemetryMetadata
from producers.client.analytics_client import Obj, TrackCalls

#: Checked in order; the first that exists wins (a broken one does not fall back).
MANIFEST_PATHS = (".codex-plugin/plugin.json", ".claude-plugin/plugin.json")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MARKETPLACE = re.compile(r"[A-Za-z0-9_-]+")


class PluginIdError(ValueError):
    """Not a ``<plugin_name>@<marketplace_name>`` key."""


@dataclass(frozen=True, slots=True)
class PluginId:
    plugin_name: str
    marketplace_name: str

    @classmethod
    def parse(cls, key: str) -> PluginId:
        """Split at the last ``@``; both halves non-empty, ASCII letters, digits, ``_``
        and ``-`` (and ``.`` in the plugin name)."""
        name, sep, marketplace = key.rpartition("@")
        if not sep or not _NAME.fullmatch(name) or not _MARKETPLACE.fullmatch(marketplace):
            raise PluginIdError(
                f"invalid plugin id {key[:128]!r}: expected <plugin_name>@<marketplace_name>"
            )
        return cls(name, marketplace)

    def as_key(self) -> str:
        return f"{self.plugin_name}@{self.marketplace_name}"

    def __str__(self) -> str:
        return self.as_key()


def _plugin_id(value: PluginId | str) -> PluginId:
    return value if isinstance(value, PluginId) else PluginId.parse(value)


InstallRoots = Callable[[PluginId], Path | None]


class PluginsManager:
    """Owns plugin telemetry metadata. ``install_roots`` says where a plugin's active
    install lives: a mapping of ``name@marketplace`` to a directory, or a function;
    :meth:`set_install_root` keeps a mapping current as plugins come and go."""

    def __init__(self, install_roots: Mapping[str, Path | str] | InstallRoots | None = None):
        self._roots: dict[str, Path] = {}
        self._lookup: InstallRoots | None = None
        if callable(install_roots):
            self._lookup = install_roots
        elif install_roots is not None:
            self._roots = {key: Path(path) for key, path in install_roots.items()}

    def set_install_root(self, plugin_id: PluginId | str, root: Path | str | None) -> None:
        key = _plugin_id(plugin_id).as_key()
        if root is None:
            self._roots.pop(key, None)
        else:
            self._roots[key] = Path(root)

    def install_root(self, plugin_id: PluginId) -> Path | None:
        if self._lookup is not None:
            return self._lookup(plugin_id)
        return self._roots.get(plugin_id.as_key())

    # -- the five upstream constructors ---------------------------------------------------

    def telemetry_metadata_for_plugin_id(
        self, plugin_id: PluginId | str
    ) -> PluginTelemetryMetadata:
        return self.telemetry_metadata_for_plugin_id_with_remote_id(plugin_id, None)

    def telemetry_metadata_for_plugin_id_with_remote_id(
        self, plugin_id: PluginId | str, remote_plugin_id: str | None
    ) -> PluginTelemetryMetadata:
        return _metadata(_plugin_id(plugin_id), remote_plugin_id, None)

    def telemetry_metadata_for_installed_plugin(
        self, plugin_id: PluginId | str
    ) -> PluginTelemetryMetadata:
        return self.telemetry_metadata_for_installed_plugin_with_remote_id(plugin_id, None)

    def telemetry_metadata_for_installed_plugin_with_remote_id(
        self, plugin_id: PluginId | str, remote_plugin_id: str | None
    ) -> PluginTelemetryMetadata:
        """The capability summary comes from the plugin's install root; it is null when
        there is no root or no loadable manifest."""
        pid = _plugin_id(plugin_id)
        root = self.install_root(pid)
        summary = capability_summary_from_root(pid, root) if root is not None else None
        return _metadata(pid, remote_plugin_id, summary)

    def telemetry_metadata_for_capability_summary(
        self, summary: PluginCapabilitySummary
    ) -> PluginTelemetryMetadata | None:
        """None (so: no event) when ``summary.config_name`` is not a plugin id."""
        try:
            pid = PluginId.parse(summary.config_name)
        except PluginIdError:
            return None
        return _metadata(pid, None, summary)

    # -- the event paths ----------------------------------------------------------------

    def track_installed(
        self, client: TrackCalls, plugin_id: PluginId | str, *, remote_plugin_id: str | None = None
    ) -> bool:
        """After a local install, or a remote install with the authoritative backend id
        the install returned (it then becomes the event's ``plugin_id``)."""
        metadata = self.telemetry_metadata_for_installed_plugin_with_remote_id(
            plugin_id, remote_plugin_id
        )
        return client.track_plugin_installed(metadata)

    def track_uninstalled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        """Call before the install root is removed, so the summary can still be read."""
        return client.track_plugin_uninstalled(
            self.telemetry_metadata_for_installed_plugin(plugin_id)
        )

    def track_enabled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        return client.track_plugin_enabled(self.telemetry_metadata_for_installed_plugin(plugin_id))

    def track_disabled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        return client.track_plugin_disabled(self.telemetry_metadata_for_installed_plugin(plugin_id))

    def track_used(
        self, client: TrackCalls, tracking: Obj, summary: PluginCapabilitySummary
    ) -> bool:
        """A plugin used in a turn, from the capability summary the turn saw."""
        metadata = self.telemetry_metadata_for_capability_summary(summary)
        if metadata is None:
            return False
        return client.track_plugin_used(tracking, metadata)


def _metadata(
    pid: PluginId, remote_plugin_id: str | None, summary: PluginCapabilitySummary | None
) -> PluginTelemetryMetadata:
    metadata = PluginTelemetryMetadata(
        plugin_id=pid.as_key(), remote_plugin_id=remote_plugin_id, capability_summary=summary
    )
    metadata.plugin_name, metadata.marketplace_name = pid.plugin_name, pid.marketplace_name
    return metadata


# -- capability summary from a plugin root ------------------------------------------------


def capability_summary_from_root(plugin_id: PluginId, root: Path) -> PluginCapabilitySummary | None:
    """Upstream ``plugin_capability_summary_from_root``: skills, MCP server names (sorted,
    unique) and app connector ids (file order, unique, blanks skipped) of the plugin
    installed at ``root``; None when its manifest cannot be loaded."""
    manifest = load_manifest(root)
    if manifest is None:
        return None
    return PluginCapabilitySummary(
        config_name=plugin_id.as_key(),
        display_name=plugin_id.plugin_name,
        description=None,
        has_skills=bool(_skill_roots(root, manifest)),
        mcp_server_names=sorted(set(_mcp_server_names(root, manifest))),
        app_connector_ids=_app_connector_ids(root, manifest),
    )


def load_manifest(root: Path) -> dict[str, Any] | None:
    for relative in MANIFEST_PATHS:
        path = root / relative
        if path.is_file():
            document = _read_json(path)
            if not isinstance(document, dict):
                return None
            # Fields without a lenient fallback upstream: a wrong type fails the manifest.
            for key in ("name", "version", "apps"):
                if key in document and not isinstance(document[key], str | None):
                    return None
            return document
    return None


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _manifest_path(root: Path, value: Any) -> Path | None:
    """A manifest path: ``./``-relative and inside the root, or None (then the field
    falls back to its default)."""
    if not isinstance(value, str) or not value.startswith("./"):
        return None
    parts = PurePosixPath(value[2:]).parts
    if not parts or any(part in ("..", ".", "") for part in parts):
        return None
    return root.joinpath(*parts)


def _skill_roots(root: Path, manifest: Mapping[str, Any]) -> list[Path]:
    declared = manifest.get("skills")
    values = declared if isinstance(declared, list) else [declared]
    roots = [p for p in (_manifest_path(root, v) for v in values) if p is not None]
    if roots:
        return sorted(set(roots))  # declared roots count even when missing (upstream)
    default = root / "skills"
    return [default] if default.is_dir() else []


def _mcp_server_names(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    declared = manifest.get("mcpServers")
    if isinstance(declared, dict):
        document: Any = declared
    else:
        path = _manifest_path(root, declared)
        if path is None:
            path = root / ".mcp.json"
            if not path.is_file():
                return []
        document = _read_json(path)
    if not isinstance(document, dict):
        return []
    servers = document.get("mcpServers", document)
    if not isinstance(servers, dict):
        return []
    return [name for name, config in servers.items() if _is_server_config(config)]


def _is_server_config(config: Any) -> bool:
    # A server entry that does not deserialize is dropped; its siblings are kept.
    return isinstance(config, dict) and (
        isinstance(config.get("command"), str) or isinstance(config.get("url"), str)
    )


def _app_connector_ids(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    path = _manifest_path(root, manifest.get("apps"))
    if path is None:
        path = root / ".app.json"
        if not path.is_file():
            return []
    document = _read_json(path)
    apps = document.get("apps", {}) if isinstance(document, dict) else None
    if not isinstance(apps, dict):
        return []
    if not all(isinstance(app, dict) and isinstance(app.get("id"), str) for app in apps.values()):
        return []  # one app without an id fails the whole file (upstream)
    ids: list[str] = []
    for app in apps.values():
        connector_id = app["id"]
        if connector_id.strip() and connector_id not in ids:
            ids.append(connector_id)
    return ids
