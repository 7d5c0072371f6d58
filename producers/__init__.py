"""Producers: how facts enter the pipeline.

* :class:`AnalyticsClient` / :class:`SyncAnalyticsClient`: the 19 ``track_*`` calls for
  Python hosts, with upstream's gates and bounded queue.
* :class:`PluginsManager`: the one place plugin telemetry metadata is built.
* The ingest gateway (``codex-analytics gateway``) for producers in other languages, and
  the session generator (``codex-analytics generate``) in :mod:`producers.generator`.
"""

from .client import QUEUE_FULL_WARNING, AnalyticsClient, ClientStats, DeliveryFailure, TrackCalls
from .envelope import DEFAULT_ORIGINATOR, ProducerIdentity, current_runtime, new_instance_id
from .plugins import PluginId, PluginIdError, PluginsManager, capability_summary_from_root
from .settings import ClientSettings
from .skills import resolve_skill_path
from .sync import SyncAnalyticsClient
from .transport import (
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
    "RetryablePublishError",
    "SyncAnalyticsClient",
    "TrackCalls",
    "capability_summary_from_root",
    "current_runtime",
    "new_instance_id",
    "resolve_skill_path",
]
