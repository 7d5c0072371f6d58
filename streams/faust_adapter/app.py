"""The stream worker's Faust app: the raw-bytes facts topic, the state table, one agent.

The worker gets from it classes of ours (:class:`~.store.StateStore`,
:class:`~.consumer.GroupConsumer`) and plain callables; Faust objects stay in here.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import faust

from codex_analytics.runtime.health import JOINING, READY, RECOVERING, STOPPING
from codex_analytics.runtime.kafka import KafkaCluster, heartbeat_interval_ms
from codex_analytics.runtime.partitioner import KeyedPartitioner
from codex_analytics.runtime.record_size import max_request_bytes
from codex_analytics.runtime.shutdown import ShutdownDeadline
from codex_analytics.runtime.topic_plan import STATE_TABLE

from ..settings import StreamSettings
from .consumer import GroupConsumer
from .credentials import broker_credentials
from .store import StateStore
from .transport import SCHEME, BatchRoute, ClusterApp


class StreamApp:
    """The Faust app of one stream worker (one agent, one table)."""

    def __init__(self, settings: StreamSettings, cluster: KafkaCluster, partitions: int) -> None:
        _require_registered_transport()
        topics = settings.topics
        changelog = settings.topic_plan.spec("changelog")
        self._shutdown_timeout_s = settings.shutdown_timeout_s
        self._app = ClusterApp(
            settings.app_id,
            broker=[f"{SCHEME}://{server}" for server in cluster.hosts],
            # Every client Faust opens (consumer, producer, topic creation) connects as
            # the cluster's other clients do; the producer's idempotence comes from
            # the cluster too (:class:`~.transport.Producer`).
            broker_credentials=broker_credentials(cluster),
            producer_compression_type=None
            if cluster.compression == "none"
            else cluster.compression,
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=settings.data_dir,
            web_enabled=False,
            producer_acks=-1,
            # The default's partitions, without hashing a key again for every record.
            producer_partitioner=KeyedPartitioner(),
            producer_linger=0.005,
            producer_max_batch_size=512 * 1024,
            # Derived from the one record-size limit, which every output is sized against
            # first (streams.processor): the client never refuses a record of ours. Faust's
            # own default (1,000,000) was a second, unrelated limit.
            producer_max_request_size=max_request_bytes(settings.max_record_bytes),
            producer_request_timeout=60.0,
            broker_session_timeout=settings.session_timeout_ms / 1000,
            broker_heartbeat_interval=heartbeat_interval_ms(settings.session_timeout_ms) / 1000,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=True,
            table_standby_replicas=0,
            topic_partitions=partitions,
            topic_replication_factor=changelog.replication_factor,
            # The runner creates every topic from the topic plan before Faust starts
            # (the changelog included, or it stops on a missing one where topics are
            # pre-created): Faust creates none. Its leader topic serves ``on_leader``
            # tasks only, and this app has none: one topic less to pre-create.
            topic_allow_declare=False,
            topic_disable_leader=True,
        )
        self._app.kafka_cluster = cluster
        self._facts = self._app.topic(
            topics.facts,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        table = self._app.Table(
            STATE_TABLE,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            # The plan's configs (compaction...), should Faust ever declare it itself.
            extra_topic_configs=dict(changelog.configs),
        )
        self.facts_topic: str = self._facts.get_topic_name()
        self.store = StateStore(table, partitioned=settings.store == "rocksdb")
        self.consumer = GroupConsumer(self._app, cluster)

    def consume(self, route: BatchRoute, run: Callable[[], Awaitable[None]]) -> None:
        """Hand the facts topic's records to ``route`` in bulk, straight from each fetch
        (see :class:`~.transport.BatchRoute`), and run ``run`` (the worker's batch loop)
        as the app's agent on that topic. The agent's subscription is what gets this
        worker its facts partitions, with the table's changelog partitions beside them;
        its Faust stream stays empty (the consumer hands every facts record to the
        route). Faust starts the agent once the first assignment's tables are
        recovered, and cancels it at stop."""
        self._app.batch_route = route

        async def agent(stream: Any) -> None:
            del stream  # the records come through the route
            await run()

        self._app.agent(self._facts, name="reduce-facts", concurrency=1)(agent)

    def task(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` beside the agent while the app runs (cancelled when it stops)."""
        self._app.task(run)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Awaitable[Any]:
        """Hand one record to the producer; the result resolves to its delivery
        (``partition``, ``offset``) or fails. Faust's ``flush`` may return early and
        hides delivery errors: await these instead."""
        return await self._app.producer.send(topic, key, value, partition, None, headers)

    @property
    def running(self) -> bool:
        return bool(self._app.started) and not self._app.should_stop

    @property
    def phase(self) -> str:
        """Where the app stands, as a readiness status: ``joining`` until its first
        rebalance ended and during every later one (Faust ends a rebalance only after
        the recovery it started), ``recovering`` while it reads changelogs back,
        ``stopping`` from the stop signal on, else ``ready``: an empty assignment
        (more workers than partitions) is ready too. Plain attributes Faust keeps;
        read on the app's loop."""
        app = self._app
        if app.should_stop:
            return STOPPING
        if app.in_recovery:
            return RECOVERING
        if not app.started or app.rebalancing or not getattr(app, "rebalancing_count", 0):
            return JOINING
        return READY

    def recovery_remaining(self) -> int | None:
        """Changelog records still to read back into the table (while recovering)."""
        try:
            tables: Any = self._app.tables  # the TableManager's recovery is not typed
            return int(tables.recovery.active_remaining_total())
        except Exception:  # between assignments, or not started
            return None

    def run(
        self,
        log_level: str,
        logging_config: dict[str, Any],
        *,
        beside: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Run the app as a Faust worker until SIGTERM/SIGINT; its exit status. The stop
        has ``ANALYTICS_SHUTDOWN_TIMEOUT_S`` (see :class:`ShutdownDeadline`).

        ``beside`` runs on the worker's loop from its first moment, before the app
        starts (group join, changelog recovery: app tasks start only after those), until
        the loop closes: the health heartbeat."""
        deadline = ShutdownDeadline(self._shutdown_timeout_s)
        worker = _QuietWorker(
            self._app,
            deadline,
            beside,
            loglevel=log_level,
            logging_config=logging_config,
            redirect_stdouts=False,
            quiet=True,
        )
        try:
            worker.execute_from_commandline()  # runs the loop; always ends in SystemExit
        except SystemExit as exit_:
            return int(exit_.code or 0)
        finally:
            deadline.cancel()


class _QuietWorker(faust.Worker):
    """Faust's worker without its progress spinner, and with a deadline on its stop.

    It also runs the worker's ``beside`` coroutine from mode's first hook on the loop.

    Faust installs a spinner even off a terminal, and to feed it sets the root logger to
    DEBUG: every library debug call (aiokafka logs one per record sent) then builds a
    LogRecord. The profile showed 7% of the worker's time there.

    Faust's stop waits on the broker (the final commit, the consumer leaving its group,
    the producer's flush), and with the broker silent it waits for ever; a second signal
    is ignored while the first stop runs. mode calls ``_on_sigterm`` / ``_on_sigint``
    from the loop's signal handlers: each also tells the deadline."""

    def __init__(
        self,
        app: Any,
        deadline: ShutdownDeadline,
        beside: Callable[[], Awaitable[None]] | None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, *args, **kwargs)
        self.spinner = None
        self._deadline = deadline
        self._beside = beside
        self._beside_task: asyncio.Future[None] | None = None

    async def on_execute(self) -> None:
        """mode's first hook on the worker's loop, before any service starts."""
        await super().on_execute()
        if self._beside is not None:
            self._beside_task = asyncio.ensure_future(self._beside())

    async def stop(self) -> None:
        """After the worker stopped, end ``beside`` too: mode waits up to a second for
        the tasks still pending before it closes the loop."""
        try:
            await super().stop()
        finally:
            if self._beside_task is not None:
                self._beside_task.cancel()

    def _on_sigterm(self) -> None:
        self._deadline.signalled(signal.SIGTERM)
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._deadline.signalled(signal.SIGINT)
        super()._on_sigint()


def _require_registered_transport() -> None:
    """Faust finds :class:`~.transport.Transport` through the package's entry point: an
    install that predates it would fail later, with a message naming Faust's own
    transports only."""
    if not metadata.entry_points(group="faust.transports", name=SCHEME):
        raise RuntimeError(
            f"no Faust transport {SCHEME!r} is registered: reinstall this package "
            "(./dev does when pyproject.toml changed) so that its faust.transports "
            "entry point is installed"
        )
