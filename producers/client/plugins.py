"""Plugin telemetry metadata, built in one place (upstream PR #27102, ``delivery.md`` §6,
profile-j.md §2 and §6).

:class:`PluginsManager` is the only code that makes a
:class:`~codex_analytics.contract.facts.PluginTelemetryMetadata`: for a bare id, an id
with the backend's remote id, an installed plugin (capability summary read from its
install root) and a capability summary (plugin used). Its ``track_*`` helpers run each
upstream event path end to end, so callers never assemble metadata themselves.

The remote id of a local plugin is resolved here, as upstream's ``PluginsManager`` does:
from the installed-plugins snapshot of the backend when one is loaded, else from the
remote-install record persisted beside the plugin's installs. Each helper writes the
metadata in the form of the client's contract: Profile J adds the capability summary's
``plugin_namespace`` and allows a null local id (an install that failed before the
plugin was resolved).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from codex_analytics.contract.facts import PluginCapabilitySummary, PluginTelemetryMetadata
from codex_analytics.contract.versions import CONTRACT_J, NEWEST_CONTRACT, ContractId
from producers.client.analytics_client import Obj, TrackCalls
from producers.client.plugin_metadata import metadata_wire

log = logging.getLogger("producers.client.plugins")

#: Checked in order; the first that exists wins (a broken one does not fall back).
MANIFEST_PATHS = (".codex-plugin/plugin.json", ".claude-plugin/plugin.json")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MARKETPLACE = re.compile(r"[A-Za-z0-9_-]+")

#: Upstream ``core-plugins`` ``store.rs``: the remote-install record, written in the
#: plugin's base directory of the plugins cache (``<cache>/<marketplace>/<name>/``).
REMOTE_INSTALL_RECORD = ".codex-remote-plugin-install.json"
REMOTE_INSTALL_RECORD_SCHEMA_VERSION = 1
#: Upstream ``remote.rs`` ``RemotePluginScope::from_marketplace_name``: only plugins of
#: these marketplaces have a persisted remote id.
REMOTE_MARKETPLACES = frozenset(
    {
        "openai-curated-remote",
        "created-by-me-remote",
        "workspace-directory",
        "workspace-shared-with-me",
        "workspace-shared-with-me-private",
        "workspace-shared-with-me-unlisted",
    }
)
_VERSION_SEGMENT = re.compile(r"[A-Za-z0-9._+-]+")
#: Upstream ``PluginInstallSource``.
INSTALL_SOURCES = ("manual", "external_agent_migration")


@dataclass(frozen=True, slots=True)
class RemoteInstalledPlugin:
    """One plugin of the backend's installed-plugins answer: what the remote id
    resolution needs of upstream ``RemoteInstalledPlugin``."""

    name: str
    marketplace_name: str
    id: str


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

    def __init__(
        self,
        install_roots: Mapping[str, Path | str] | InstallRoots | None = None,
        *,
        plugins_cache_root: Path | str | None = None,
        remote_installed: Iterable[RemoteInstalledPlugin] | None = None,
    ):
        """``plugins_cache_root`` is upstream's plugin store root
        (``$CODEX_HOME/plugins/cache``), where remote installs persist their remote id;
        ``remote_installed`` the backend's installed-plugins snapshot, when loaded
        (:meth:`set_remote_installed` keeps it current)."""
        self._roots: dict[str, Path] = {}
        self._lookup: InstallRoots | None = None
        if callable(install_roots):
            self._lookup = install_roots
        elif install_roots is not None:
            self._roots = {key: Path(path) for key, path in install_roots.items()}
        self._cache_root = None if plugins_cache_root is None else Path(plugins_cache_root)
        self._snapshot: dict[str, str] | None = None
        self.set_remote_installed(remote_installed)

    def set_remote_installed(self, plugins: Iterable[RemoteInstalledPlugin] | None) -> None:
        """Load (or, with None, forget) the backend's installed-plugins snapshot. While
        one is loaded it alone answers remote ids: a plugin missing from it has none
        (upstream ``remote_plugin_id_for``). The first entry of a local key wins; an
        entry whose name and marketplace make no valid key is skipped."""
        if plugins is None:
            self._snapshot = None
            return
        snapshot: dict[str, str] = {}
        for plugin in plugins:
            if not _NAME.fullmatch(plugin.name) or not _MARKETPLACE.fullmatch(
                plugin.marketplace_name
            ):
                continue
            snapshot.setdefault(PluginId(plugin.name, plugin.marketplace_name).as_key(), plugin.id)
        self._snapshot = snapshot

    def remote_plugin_id_for(self, plugin_id: PluginId | str) -> str | None:
        """The backend id of a local plugin: the snapshot's when one is loaded, else the
        persisted remote-install record's, else None."""
        pid = _plugin_id(plugin_id)
        if self._snapshot is not None:
            return self._snapshot.get(pid.as_key())
        return self.persisted_remote_plugin_id(pid)

    def persisted_remote_plugin_id(self, plugin_id: PluginId | str) -> str | None:
        """Upstream ``persisted_remote_plugin_id_for_installation``: the record
        ``{"schema_version": 1, "remote_plugin_id": "..."}`` in the plugin's base directory
        of the plugins cache, for an installed plugin of a remote marketplace. A record
        that cannot be read or is malformed gives None (logged, as upstream warns)."""
        pid = _plugin_id(plugin_id)
        if self._cache_root is None or pid.marketplace_name not in REMOTE_MARKETPLACES:
            return None
        base = self._cache_root / pid.marketplace_name / pid.plugin_name
        if active_plugin_version(base) is None:
            return None
        try:
            raw = (base / REMOTE_INSTALL_RECORD).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "failed to read persisted remote plugin identity",
                extra={"plugin_id": pid.as_key(), "error": exc.strerror},
            )
            return None
        remote_plugin_id = _remote_id_from_record(raw)
        if remote_plugin_id is None:
            log.warning(
                "failed to read persisted remote plugin identity",
                extra={"plugin_id": pid.as_key(), "error": "invalid remote plugin install record"},
            )
        return remote_plugin_id

    def set_install_root(self, plugin_id: PluginId | str, root: Path | str | None) -> None:
        key = _plugin_id(plugin_id).as_key()
        if root is None:
            self._roots.pop(key, None)
        else:
            self._roots[key] = Path(root)

    def install_root(self, plugin_id: PluginId) -> Path | None:
        """Where the plugin is installed: the lookup or mapping given, else its active
        version in the plugins cache (upstream reads summaries and remote ids from the
        same store)."""
        if self._lookup is not None:
            return self._lookup(plugin_id)
        root = self._roots.get(plugin_id.as_key())
        if root is None and self._cache_root is not None:
            base = self._cache_root / plugin_id.marketplace_name / plugin_id.plugin_name
            version = active_plugin_version(base)
            root = None if version is None else base / version
        return root

    # -- the five upstream constructors ---------------------------------------------------

    def telemetry_metadata_for_plugin_id(
        self, plugin_id: PluginId | str, *, contract: ContractId = NEWEST_CONTRACT
    ) -> PluginTelemetryMetadata:
        """The local key and, under ``2026-08``, its resolved remote id
        (:meth:`remote_plugin_id_for`; ``2026-06`` resolves none)."""
        return self.telemetry_metadata_for_plugin_id_with_remote_id(
            plugin_id, None, contract=contract
        )

    def telemetry_metadata_for_plugin_id_with_remote_id(
        self,
        plugin_id: PluginId | str,
        remote_plugin_id: str | None,
        *,
        contract: ContractId = NEWEST_CONTRACT,
    ) -> PluginTelemetryMetadata:
        """A given remote id (the backend's answer to an install) wins over the
        resolved one."""
        pid = _plugin_id(plugin_id)
        if remote_plugin_id is None:
            remote_plugin_id = self._resolved_remote_id(pid, contract)
        return _metadata(pid, remote_plugin_id, None)

    def telemetry_metadata_for_installed_plugin(
        self, plugin_id: PluginId | str, *, contract: ContractId = NEWEST_CONTRACT
    ) -> PluginTelemetryMetadata:
        return self.telemetry_metadata_for_installed_plugin_with_remote_id(
            plugin_id, None, contract=contract
        )

    def telemetry_metadata_for_installed_plugin_with_remote_id(
        self,
        plugin_id: PluginId | str,
        remote_plugin_id: str | None,
        *,
        contract: ContractId = NEWEST_CONTRACT,
    ) -> PluginTelemetryMetadata:
        """The capability summary comes from the plugin's install root; it is null when
        there is no root or no loadable manifest."""
        pid = _plugin_id(plugin_id)
        metadata = self.telemetry_metadata_for_plugin_id_with_remote_id(
            pid, remote_plugin_id, contract=contract
        )
        root = self.install_root(pid)
        if root is not None:
            metadata.capability_summary = capability_summary_from_root(pid, root)
        return metadata

    def telemetry_metadata_for_capability_summary(
        self, summary: PluginCapabilitySummary, *, contract: ContractId = NEWEST_CONTRACT
    ) -> PluginTelemetryMetadata | None:
        """None (so: no event) when ``summary.config_name`` is not a plugin id."""
        try:
            pid = PluginId.parse(summary.config_name)
        except PluginIdError:
            return None
        return _metadata(pid, self._resolved_remote_id(pid, contract), summary)

    def _resolved_remote_id(self, pid: PluginId, contract: ContractId) -> str | None:
        """Profile J resolves a plugin's remote id itself; Profile S's constructors give
        none (delivery.md §6: only a remote install names its backend id)."""
        return self.remote_plugin_id_for(pid) if contract == CONTRACT_J else None

    # -- the event paths ----------------------------------------------------------------

    def track_installed(
        self, client: TrackCalls, plugin_id: PluginId | str, *, remote_plugin_id: str | None = None
    ) -> bool:
        """After a local install, or a remote install with the authoritative backend id
        the install returned (it then becomes the event's ``plugin_id``)."""
        metadata = self.telemetry_metadata_for_installed_plugin_with_remote_id(
            plugin_id, remote_plugin_id, contract=client.contract
        )
        return client.track_plugin_installed(self._installed_wire(client, metadata))

    def track_uninstalled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        """Call before the install root is removed, so the summary can still be read."""
        metadata = self.telemetry_metadata_for_installed_plugin(plugin_id, contract=client.contract)
        return client.track_plugin_uninstalled(self._installed_wire(client, metadata))

    def track_remote_uninstalled(
        self,
        client: TrackCalls,
        plugin_id: PluginId | str,
        remote_plugin_id: str,
        fallback_summary: PluginCapabilitySummary | Mapping[str, Any],
    ) -> bool:
        """A remote plugin uninstalled through the backend (upstream
        ``remote_plugin_uninstall_response``): the local key the backend's detail names,
        the backend id, and the summary read from the local install, else
        ``fallback_summary`` (built from the backend's detail of the plugin). Call once
        the backend accepted the uninstall, before the local install is removed."""
        pid = _plugin_id(plugin_id)
        metadata = self.telemetry_metadata_for_installed_plugin_with_remote_id(
            pid, remote_plugin_id, contract=client.contract
        )
        if metadata.capability_summary is not None:
            return client.track_plugin_uninstalled(self._installed_wire(client, metadata))
        wire = metadata_wire(
            client.contract,
            plugin_id=pid.as_key(),
            remote_plugin_id=metadata.remote_plugin_id,
            summary=fallback_summary,
            # Upstream names the fallback summary's namespace after the plugin.
            namespace=pid.plugin_name,
        )
        return client.track_plugin_uninstalled(wire)

    def track_enabled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        metadata = self.telemetry_metadata_for_installed_plugin(plugin_id, contract=client.contract)
        return client.track_plugin_enabled(self._installed_wire(client, metadata))

    def track_disabled(self, client: TrackCalls, plugin_id: PluginId | str) -> bool:
        metadata = self.telemetry_metadata_for_installed_plugin(plugin_id, contract=client.contract)
        return client.track_plugin_disabled(self._installed_wire(client, metadata))

    def track_used(
        self,
        client: TrackCalls,
        tracking: Obj,
        summary: PluginCapabilitySummary | Mapping[str, Any],
    ) -> bool:
        """A plugin used in a turn, from the capability summary the turn saw (a model, or
        its wire form, which under Profile J may carry ``plugin_namespace``)."""
        config_name = _summary_field(summary, "config_name")
        try:
            pid = PluginId.parse(str(config_name))
        except PluginIdError:
            return False
        wire = metadata_wire(
            client.contract,
            plugin_id=pid.as_key(),
            remote_plugin_id=self._resolved_remote_id(pid, client.contract),
            summary=summary,
            # Upstream's used-plugin summary names the loaded plugin's namespace: its
            # manifest's name (``load_outcome.rs``), when the install root is known here.
            namespace=self._namespace(pid),
        )
        return client.track_plugin_used(tracking, wire)

    def track_install_failed(
        self,
        client: TrackCalls,
        *,
        plugin_id: PluginId | str | None,
        remote_plugin_id: str | None = None,
        error_type: str,
        sub_error_type: str | None = None,
        source: str = "manual",
    ) -> bool:
        """An install that failed (Profile J only), with whatever is known: the local
        key once the plugin was resolved (its remote id resolved too when none is
        given), else only the backend id. Never a capability summary, as upstream."""
        if source not in INSTALL_SOURCES:
            raise ValueError(f"install source must be one of {sorted(INSTALL_SOURCES)}")
        if plugin_id is None:
            wire = metadata_wire(
                client.contract, plugin_id=None, remote_plugin_id=remote_plugin_id, summary=None
            )
        else:
            metadata = self.telemetry_metadata_for_plugin_id_with_remote_id(
                plugin_id, remote_plugin_id, contract=client.contract
            )
            wire = metadata_wire(
                client.contract,
                plugin_id=metadata.plugin_id,
                remote_plugin_id=metadata.remote_plugin_id,
                summary=None,
            )
        return client.track_plugin_install_failed(wire, source, error_type, sub_error_type)

    def _namespace(self, pid: PluginId) -> str | None:
        root = self.install_root(pid)
        return None if root is None else manifest_namespace(root)

    def _installed_wire(self, client: TrackCalls, metadata: PluginTelemetryMetadata) -> Obj:
        """The metadata of an installed plugin in the client's contract: the model itself
        for Profile S (its facts unchanged), the wire form with the summary's namespace
        (the manifest's name, upstream ``plugin_capability_summary_from_root``) for J."""
        if client.contract != CONTRACT_J:
            return metadata
        namespace = None
        if metadata.capability_summary is not None:
            namespace = self._namespace(PluginId.parse(metadata.plugin_id))
        return metadata_wire(
            client.contract,
            plugin_id=metadata.plugin_id,
            remote_plugin_id=metadata.remote_plugin_id,
            summary=metadata.capability_summary,
            namespace=namespace,
        )


def _summary_field(summary: PluginCapabilitySummary | Mapping[str, Any], name: str) -> Any:
    if isinstance(summary, PluginCapabilitySummary):
        return getattr(summary, name)
    return summary.get(name)


def active_plugin_version(base: Path) -> str | None:
    """Upstream ``PluginStore::active_plugin_version``: of the plugin's version
    directories with a valid name (not followed through symlinks), ``local`` when there
    is one, else the highest (semver order where both parse, else by name)."""
    try:
        versions = [
            entry.name
            for entry in base.iterdir()
            if entry.is_dir()
            and not entry.is_symlink()
            and entry.name not in (".", "..")
            and _VERSION_SEGMENT.fullmatch(entry.name) is not None
        ]
    except OSError:
        return None
    if not versions:
        return None
    if LOCAL_PLUGIN_VERSION in versions:
        return LOCAL_PLUGIN_VERSION
    return max(versions, key=functools.cmp_to_key(_compare_versions))


#: Upstream ``DEFAULT_PLUGIN_VERSION``: a plugin installed from a local source.
LOCAL_PLUGIN_VERSION = "local"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def _semver_key(version: str) -> tuple[Any, ...] | None:
    """A sort key in semver precedence (a release above its pre-releases; numeric
    identifiers below alphanumeric ones), build metadata last; None if not semver."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        return None
    major, minor, patch, pre, build = match.groups()
    pre_key = (
        (1,)
        if pre is None
        else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    )
    return (int(major), int(minor), int(patch), pre_key, build or "")


def _compare_versions(left: str, right: str) -> int:
    """Upstream ``compare_plugin_versions``: semver order when both parse, else by name."""
    lk, rk = _semver_key(left), _semver_key(right)
    a: Any = left if lk is None or rk is None else lk
    b: Any = right if lk is None or rk is None else rk
    return int(a > b) - int(a < b)


def _remote_id_from_record(raw: bytes) -> str | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    version = record.get("schema_version")
    # Upstream reads a u8: true or 1.0 are not 1 there (Python's == would say they are).
    if type(version) is not int or version != REMOTE_INSTALL_RECORD_SCHEMA_VERSION:
        return None
    remote_plugin_id = record.get("remote_plugin_id")
    if not isinstance(remote_plugin_id, str) or not remote_plugin_id.strip():
        return None
    return remote_plugin_id.strip()


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


def manifest_namespace(root: Path) -> str | None:
    """Upstream's ``plugin_namespace`` of a summary read from a root: the manifest's
    ``name``, or the root directory's name when that is blank."""
    manifest = load_manifest(root)
    if manifest is None:
        return None
    name = manifest.get("name")
    if isinstance(name, str) and name.strip():
        return name
    return root.name


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
