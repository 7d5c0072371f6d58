"""Producers: how facts enter the pipeline.

* :class:`AnalyticsClient` / :class:`SyncAnalyticsClient`: upstream's ``track_*`` calls
  for Python hosts (33 under contract ``2026-08``, the default; the 19 of ``2026-06``),
  with upstream's gates and bounded queue.
* :class:`PluginsManager`: the one place plugin telemetry metadata is built.
* The ingest gateway (``codex-analytics gateway``) for producers in other languages, and
  the session generator (``codex-analytics generate``) in :mod:`codex_analytics.simulator.generator`.
"""

from producers.client.analytics_client import (
    QUEUE_FULL_WARNING,
    AnalyticsClient,
    ClientStats,
    DeliveryFailure,
    TrackCalls,
)
from producers.client.envelope import (
    DEFAULT_ORIGINATOR,
    ProducerIdentity,
    current_runtime,
    new_instance_id,
)
from producers.client.plugins import (
    PluginId,
    PluginIdError,
    PluginsManager,
    RemoteInstalledPlugin,
    capability_summary_from_root,
)
from producers.client.settings import ClientSettings
from producers.client.skills import resolve_skill_path
from producers.client.sync_client import SyncAnalyticsClient
from producers.publishing.transport import (
    FactTransport,
    KafkaFactTransport,
    PermanentPublishError,
    PublishError,
    RetryablePublishError,
)

__all__ = [
    "DEFAULT_ORIGINATOR",
    "QUEUE_FULL_WARNING",
    "AnalyticsClient",
    "ClientSettings",
    "ClientStats",
    "DeliveryFailure",
    "FactTransport",
    "KafkaFactTransport",
    "PermanentPublishError",
    "PluginId",
    "PluginIdError",
    "PluginsManager",
    "ProducerIdentity",
    "PublishError",
    "RemoteInstalledPlugin",
    "RetryablePublishError",
    "SyncAnalyticsClient",
    "TrackCalls",
    "capability_summary_from_root",
    "current_runtime",
    "new_instance_id",
    "resolve_skill_path",
]
