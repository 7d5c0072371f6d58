"""The pipeline's services as local processes: stream worker(s), sink worker and,
optionally, the receiver, each started from its ``codex-analytics`` command with its
configuration in the environment, exactly as the compose file runs them.

Used by the ``demo`` and ``smoke`` commands. Every process logs to a file of its own;
``metrics()`` scrapes their ``/metrics`` endpoints into one :class:`MetricsSnapshot`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from codex_analytics.contract import topics as topic_names
from codex_analytics.devtools.broker import free_port, terminate
from codex_analytics.runtime.kafka import (
    MAX_RECORD_BYTES,
    PARTITIONS_ENV,
    KafkaCluster,
    KafkaTarget,
    TopicSettings,
)

CLI = [sys.executable, "-m", "codex_analytics.cli.main"]
#: The one access token of the local stack's accounts: a placeholder, never a secret.
DEMO_TOKEN_PREFIX = "local-demo-token-"


class StackError(RuntimeError):
    """A service of the local stack did not start or stopped unexpectedly."""


def topics_env(topics: TopicSettings) -> dict[str, str]:
    return {
        topic_names.FACTS_TOPIC_ENV: topics.facts,
        topic_names.FACTS_DLQ_TOPIC_ENV: topics.facts_dlq,
        topic_names.EVENTS_TOPIC_ENV: topics.events,
        topic_names.EVENTS_DLQ_TOPIC_ENV: topics.events_dlq,
        PARTITIONS_ENV: str(topics.partitions),
        MAX_RECORD_BYTES.name: str(topics.max_record_bytes),
    }


async def create_topics(cluster: KafkaTarget, topics: TopicSettings) -> int:
    """Create the run's four topics (missing ones only, as the topic policy says), after
    waiting for the cluster (``ANALYTICS_KAFKA_WAIT_S``); the facts topic's partitions.
    Raises :class:`~codex_analytics.runtime.kafka_start.KafkaStartError`."""
    from codex_analytics.runtime.kafka_start import prepare_topics
    from codex_analytics.runtime.topic_plan import TopicPlan

    kafka = KafkaCluster.of(cluster)
    existing = await prepare_topics(kafka, TopicPlan.pipeline(topics), within=kafka.start_wait_s)
    return existing[topics.facts].partitions


def private_topics(
    prefix: str,
    partitions: int,
    max_record_bytes: int = MAX_RECORD_BYTES.default,
    *,
    policy: TopicSettings | None = None,
) -> TopicSettings:
    """Topics of one run, so that a run on a shared cluster never mixes with live data;
    created as ``policy`` (the configured topic settings) says."""
    return dataclasses.replace(
        policy or TopicSettings(),
        facts=f"{prefix}.facts",
        facts_dlq=f"{prefix}.facts.dlq",
        events=f"{prefix}.events",
        events_dlq=f"{prefix}.events.dlq",
        partitions=partitions,
        max_record_bytes=max_record_bytes,
    )


@dataclass
class ServiceProcess:
    """One service: its command, environment, log file and health/metrics address."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    http_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    #: What answers 200 once the service can work (the receiver has only ``/healthz``).
    ready_path: str = "/readyz"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C on the terminal reaches the demo, which stops
            # the services in order (the sink must outlive the stream to flush).
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit status."""
        process = self.process
        if process is None:
            return None
        terminate(process, timeout_s)
        return process.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class MetricsSnapshot:
    """Samples of one or more ``/metrics`` pages: ``(sample name, labels) -> value``."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def add_text(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.samples[key] = self.samples.get(key, 0.0) + sample.value

    def total(self, name: str, **labels: str) -> int:
        """Sum of ``name`` over the samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return int(
            sum(v for (n, lbls), v in self.samples.items() if n == name and wanted <= set(lbls))
        )

    def by_label(self, name: str, label: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (n, lbls), value in self.samples.items():
            if n == name:
                key = dict(lbls).get(label, "")
                out[key] = out.get(key, 0) + int(value)
        return out


#: Every way the sink finishes with an event (delivered or not, it is handled).
SINK_OUTCOMES = ("captured", "delivered", "skipped", "dead_lettered")


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    """Where a run stands, from the services' metrics."""

    records: int  # facts records the stream workers processed
    facts: int
    events: int  # events the stream emitted
    handled: int  # events the sink finished with
    stream_lag: int
    sink_lag: int

    @classmethod
    def of(cls, stream: MetricsSnapshot, sink: MetricsSnapshot) -> PipelineCounts:
        return cls(
            records=stream.total("codex_stream_records_total"),
            facts=stream.total("codex_stream_facts_total"),
            events=stream.total("codex_stream_events_total"),
            handled=sum(sink.total("codex_sink_events_total", outcome=o) for o in SINK_OUTCOMES),
            stream_lag=stream.total("codex_stream_consumer_lag_records"),
            sink_lag=sink.total("codex_sink_consumer_lag_records"),
        )

    def settled(self, published_records: int) -> bool:
        """Every published record reduced and every event it made handled by the sink."""
        return (
            self.records >= published_records
            and self.stream_lag == 0
            and self.handled >= self.events
        )


#: Our settings' prefixes: a child service takes none of them from its parent. Kafka's
#: included: a child is told its cluster (a bare bootstrap is PLAINTEXT, or
#: ``KafkaCluster.environment()``), so that a parent's ``KAFKA_SECURITY_PROTOCOL=SSL``
#: never reaches a child of an embedded broker.
OWN_SETTINGS = ("ANALYTICS_", "CODEX_", "KAFKA_")


def child_env(*, drop: tuple[str, ...] = OWN_SETTINGS, **settings: str) -> dict[str, str]:
    """This process's environment for a service it starts, minus every variable under
    ``drop`` (a stray ``ANALYTICS_BASE_URL`` must never turn a demo or a test into real
    uploads), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(settings)
    return env


class LocalStack:
    """Stream worker(s) + sink worker (+ receiver) against one Kafka bootstrap."""

    def __init__(
        self,
        cluster: KafkaTarget,
        out_dir: Path,
        topics: TopicSettings,
        *,
        run_id: str,
        stream_workers: int = 1,
        capture_path: Path | None = None,
        receiver_store: Path | None = None,
        accounts: tuple[str, ...] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if (capture_path is None) == (receiver_store is None):
            raise ValueError("exactly one of capture_path and receiver_store")
        self.out_dir = out_dir
        self.cluster = KafkaCluster.of(cluster)
        self.topics = topics
        self.capture_path = capture_path
        self.receiver_store = receiver_store
        self.logs_dir = out_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        # The services reach the cluster exactly as this process does, and only so: an
        # embedded broker is PLAINTEXT whatever KAFKA_* this process inherited.
        self.base_env = child_env(drop=("ANALYTICS_", "CODEX_ANALYTICS_", "KAFKA_"))
        self.base_env.update(
            self.cluster.environment(),
            ANALYTICS_LOG_LEVEL="INFO",
            **topics_env(topics),
        )
        self.base_env.update(extra_env or {})
        self.streams = [
            self._service(
                f"stream-{n}",
                ["stream", "worker"],
                ANALYTICS_STREAM_APP_ID=f"{run_id}-stream",
                ANALYTICS_STREAM_HEALTH_ADDR="127.0.0.1:{port}",
                ANALYTICS_STREAM_DATA_DIR=str(out_dir / f"stream-data-{n}"),
            )
            for n in range(1, stream_workers + 1)
        ]
        self.receiver: ServiceProcess | None = None
        sink_env = {
            "ANALYTICS_SINK_GROUP": f"{run_id}-sink",
            "ANALYTICS_SINK_HEALTH_ADDR": "127.0.0.1:{port}",
        }
        if receiver_store is not None:
            self.receiver = self._service(
                "receiver",
                ["receiver", "--addr", "127.0.0.1:{port}", "--store", str(receiver_store)],
            )
            self.receiver.ready_path = "/healthz"
            sink_env["ANALYTICS_BASE_URL"] = f"{self.receiver.base_url}/backend-api/"
            sink_env["ANALYTICS_SECRETS_DIR"] = str(self._write_secrets(accounts))
        else:
            assert capture_path is not None
            sink_env["CODEX_ANALYTICS_EVENTS_CAPTURE_FILE"] = str(capture_path)
            # Capture mode has no accounts to check: the local stack captures every route.
            sink_env["ANALYTICS_CAPTURE_IGNORES_AUTH"] = "true"
        self.sink = self._service("sink", ["sink", "worker"], **sink_env)

    def _service(self, name: str, command: list[str], **env: str) -> ServiceProcess:
        port = free_port("127.0.0.1")
        argv = [*CLI, *(part.replace("{port}", str(port)) for part in command)]
        merged = {**self.base_env, **{k: v.replace("{port}", str(port)) for k, v in env.items()}}
        return ServiceProcess(name, argv, merged, self.logs_dir / f"{name}.log", port)

    def _write_secrets(self, accounts: tuple[str, ...]) -> Path:
        """One placeholder token per account, as a secrets manager would mount them."""
        secrets = self.out_dir / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        for account in accounts:
            path = secrets / account
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"{DEMO_TOKEN_PREFIX}{account}")
        return secrets

    @property
    def services(self) -> list[ServiceProcess]:
        return [*([self.receiver] if self.receiver else []), *self.streams, self.sink]

    def start(self) -> None:
        for service in self.services:
            service.start()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every service answers its readiness probe with 200 (the workers: joined
        their groups, changelogs read back), or raise :class:`StackError` with what the
        last answer said, or the log of a service that exited."""
        deadline = time.monotonic() + timeout_s
        pending = list(self.services)
        last = "no answer"
        with httpx.Client(timeout=1.0) as client:
            while pending:
                self.check_alive()
                service = pending[0]
                with contextlib.suppress(httpx.HTTPError):
                    answer = client.get(f"{service.base_url}{service.ready_path}")
                    if answer.status_code == 200:
                        pending.pop(0)
                        last = "no answer"
                        continue
                    last = answer.text
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{service.name} was not ready within {timeout_s:.0f} s: {last}"
                    )
                time.sleep(0.1)

    def check_alive(self) -> None:
        for service in self.services:
            code = service.exit_code
            if code is not None:
                raise StackError(
                    f"{service.name} exited with status {code}; its log ({service.log_path}) "
                    f"ends with:\n{service.log_tail()}"
                )

    def metrics(self) -> tuple[MetricsSnapshot, MetricsSnapshot]:
        """(stream workers summed, sink) as scraped now; a service that does not answer
        contributes nothing."""
        stream, sink = MetricsSnapshot(), MetricsSnapshot()
        with httpx.Client(timeout=2.0) as client:
            for snapshot, services in ((stream, self.streams), (sink, [self.sink])):
                for service in services:
                    with contextlib.suppress(httpx.HTTPError):
                        response = client.get(f"{service.base_url}/metrics")
                        if response.status_code == 200:
                            snapshot.add_text(response.text)
        return stream, sink

    def stop(self) -> dict[str, int | None]:
        """Stop in pipeline order: stream workers, then the sink (it flushes what the
        stream produced), then the receiver. Returns each service's exit status."""
        return {service.name: service.stop() for service in [*self.streams, self.sink]} | (
            {self.receiver.name: self.receiver.stop()} if self.receiver else {}
        )


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C: the caller's ``finally`` blocks stop the services."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
