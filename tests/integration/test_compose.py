"""docker-compose.yml, checked without a Docker engine.

1. The file is a valid Compose file: validated against the Compose specification (the
   ``compose-spec`` validator, after YAML merge keys are resolved as ``docker compose
   config`` does), and a broken copy is rejected, so the check can fail.
2. Every project service runs as a local process with the command and environment the
   file gives it, against a real broker: container addresses are mapped to local ones
   (``kafka:9092`` to the embedded broker, ``0.0.0.0:PORT`` and ``http://svc:PORT`` to
   a free local port per process, volumes to directories), the stream service with two
   replicas as ``--scale stream=2`` would run it. Each service's own health check URL
   must answer 200, and the load service's facts plus facts posted to the gateway must
   arrive at the receiver as exactly the events ``reduce`` makes of them.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from compose_spec import PyCompose

from codex_analytics.cli.config_checks import check_environment, resolve_commands
from codex_analytics.devtools.broker import free_port
from codex_analytics.devtools.localstack import MetricsSnapshot
from codex_analytics.devtools.verify import compare, received_events, reference_events
from tests.cli import ROOT, run_cli
from tests.deploy_metrics import SCRAPE_SERIES, exported_names, names_used

pytestmark = pytest.mark.integration

COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
PROJECT_IMAGE = "codex-analytics:local"
PROJECT_SERVICES = {"topics", "receiver", "gateway", "stream", "sink", "load"}


def _validate(document: dict[str, Any]) -> None:
    PyCompose.from_json(json.dumps(document))


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    _validate(COMPOSE)
    services = COMPOSE["services"]
    assert {n for n, s in services.items() if s.get("image") == PROJECT_IMAGE} == PROJECT_SERVICES
    for name in ("kafka", "receiver", "gateway", "stream", "sink"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    # Prometheus and Grafana get the files the repository tests (alerts, dashboard).
    mounts = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert {"./deploy/prometheus", "./deploy/grafana/dashboard.json"} <= mounts
    for mount in mounts:
        assert not mount.startswith("./") or (ROOT / mount).exists(), mount
    # The check fails on a broken file (an unknown key, a bad duration, a bad condition).
    for broken in (
        COMPOSE_TEXT.replace("    healthcheck:\n      test:", "    healthcheck:\n      tset:", 1),
        COMPOSE_TEXT.replace("interval: 5s", "interval: 5 parsecs", 1),
        COMPOSE_TEXT.replace("service_completed_successfully", "service_done", 1),
    ):
        assert broken != COMPOSE_TEXT
        with pytest.raises(ValueError):
            _validate(yaml.safe_load(broken))


def test_topics_service_creates_the_topics_the_services_use() -> None:
    """The topics job applies the plan of the services' own topic settings (and the
    stream's app id: its changelog's name)."""
    services = COMPOSE["services"]
    assert services["topics"]["command"] == ["topics", "apply"]
    job = services["topics"]["environment"]
    for name in ("gateway", "stream", "sink", "load"):
        env = services[name]["environment"]
        topic_settings = {
            k: v for k, v in env.items() if k.startswith(("ANALYTICS_TOPIC_", "KAFKA_"))
        }
        topic_settings |= {k: v for k, v in env.items() if k.endswith("_TOPIC")}
        assert topic_settings.items() <= job.items(), name
    assert (
        job["ANALYTICS_STREAM_APP_ID"]
        == services["stream"]["environment"]["ANALYTICS_STREAM_APP_ID"]
    )


@dataclass
class LocalService:
    """One replica of a compose service as a local process."""

    name: str
    replica: int
    spec: dict[str, Any]
    ports: dict[int, int] = field(default_factory=dict)  # container port -> local port
    process: subprocess.Popen[bytes] | None = None


class ComposeAsProcesses:
    def __init__(self, bootstrap: str, tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.tmp = tmp
        self.services: dict[str, list[LocalService]] = {}
        self.logs = tmp / "logs"
        self.logs.mkdir()

    def plan(self, name: str, replicas: int = 1) -> list[LocalService]:
        spec = COMPOSE["services"][name]
        text = json.dumps([spec.get("command"), spec.get("environment")])
        listening = {int(p) for p in re.findall(r"0\.0\.0\.0:(\d+)", text)}
        instances = [
            LocalService(name, n, spec, {port: free_port("127.0.0.1") for port in listening})
            for n in range(1, replicas + 1)
        ]
        self.services[name] = instances
        return instances

    def rewrite(self, value: str, service: LocalService) -> str:
        value = value.replace("kafka:9092", self.bootstrap)
        value = re.sub(
            r"0\.0\.0\.0:(\d+)", lambda m: f"127.0.0.1:{service.ports[int(m.group(1))]}", value
        )

        def other(match: re.Match[str]) -> str:
            target = self.services[match.group(1)][0]
            return f"http://127.0.0.1:{target.ports[int(match.group(2))]}"

        value = re.sub(r"http://([a-z]+):(\d+)", other, value)
        for container_path, host_path in self.volumes(service).items():
            value = value.replace(container_path, str(host_path))
        return value

    def volumes(self, service: LocalService) -> dict[str, Path]:
        mounts: dict[str, Path] = {}
        for volume in service.spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                mounts[target] = ROOT / source[2:]
            else:  # a named volume: a directory of its own
                mounts[target] = self.tmp / "volumes" / source
                mounts[target].mkdir(parents=True, exist_ok=True)
        return mounts

    def argv_env(self, service: LocalService) -> tuple[list[str], dict[str, str]]:
        command = service.spec["command"]
        argv = [self.rewrite(str(part), service) for part in command]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ANALYTICS_", "KAFKA_", "CODEX_ANALYTICS_"))
        }
        for key, value in (service.spec.get("environment") or {}).items():
            env[key] = self.rewrite(str(value), service)
        # What the image's Dockerfile sets: a container-local state directory.
        env["ANALYTICS_STREAM_DATA_DIR"] = str(self.tmp / f"{service.name}-{service.replica}")
        return [sys.executable, "-m", "codex_analytics.cli.main", *argv], env

    def start(self, name: str) -> None:
        for service in self.services[name]:
            argv, env = self.argv_env(service)
            log = open(self.logs / f"{name}-{service.replica}.log", "wb")  # noqa: SIM115
            service.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp
            )

    def health_url(self, service: LocalService) -> str:
        test = " ".join(service.spec["healthcheck"]["test"])
        match = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)'", test)
        assert match, f"{service.name}: health check has no local URL: {test}"
        port = int(match.group(1))
        assert port in service.ports, (
            f"{service.name}: health check port {port} is not a port it listens on "
            f"({sorted(service.ports)})"
        )
        return f"http://127.0.0.1:{service.ports[port]}{match.group(2)}"

    def wait_healthy(self, name: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        for service in self.services[name]:
            url = self.health_url(service)
            while True:
                assert service.process is not None
                assert service.process.poll() is None, self.log_tail(service)
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{url} never healthy\n{self.log_tail(service)}"
                time.sleep(0.2)

    def log_tail(self, service: LocalService) -> str:
        path = self.logs / f"{service.name}-{service.replica}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name in ("gateway", "stream", "sink", "receiver"):
            for service in self.services.get(name, []):
                process = service.process
                if process is None:
                    continue
                if process.poll() is None:
                    process.terminate()
                try:
                    codes[f"{name}-{service.replica}"] = process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    codes[f"{name}-{service.replica}"] = process.wait()
        return codes


def test_every_service_environment_passes_config_check(tmp_path: Path) -> None:
    """What ``codex-analytics config check`` would say in each container: no error (a
    misspelled or malformed variable in the file fails here), paths mapped as above."""
    local = ComposeAsProcesses("127.0.0.1:9092", tmp_path)
    for name in ("receiver", "gateway", "stream", "sink", "load"):
        local.plan(name)
    for name in ("receiver", "gateway", "stream", "sink", "load"):
        service = local.services[name][0]
        argv, env = local.argv_env(service)
        words = list(itertools.takewhile(lambda arg: not arg.startswith("-"), argv[3:]))
        commands = resolve_commands(words)
        ours = {k: v for k, v in env.items() if k.startswith(("ANALYTICS_", "KAFKA_", "CODEX_"))}
        problems = [f.line() for f in check_environment(ours, commands) if f.level == "error"]
        assert not problems, f"{name}: {problems}"


@pytest.fixture
def stack(fresh_broker: str, tmp_path: Path) -> Iterator[ComposeAsProcesses]:
    local = ComposeAsProcesses(fresh_broker, tmp_path)
    try:
        yield local
    finally:
        local.stop()


def test_compose_services_run_as_local_processes(stack: ComposeAsProcesses, tmp_path: Path) -> None:
    services = COMPOSE["services"]
    # topics: the job runs to its end first (depends_on: service_completed_successfully).
    argv, env = stack.argv_env(LocalService("topics", 1, services["topics"]))
    topics = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert topics.returncode == 0, topics.stderr
    partitions = int(services["stream"]["environment"]["ANALYTICS_TOPIC_PARTITIONS"])

    for name, replicas in (("receiver", 1), ("gateway", 1), ("stream", 2), ("sink", 1)):
        stack.plan(name, replicas)
    for name in ("receiver", "gateway", "stream", "sink"):  # the depends_on order
        stack.start(name)
    for name in ("receiver", "gateway", "stream", "sink"):
        stack.wait_healthy(name)

    # The load service's command, with a smaller --facts and no --rate (test time).
    load_args = [str(a) for a in services["load"]["command"]]
    load_args[load_args.index("--facts") + 1] = "3000"
    rate = load_args.index("--rate")
    del load_args[rate : rate + 2]
    load = LocalService("load", 1, services["load"])
    argv, env = stack.argv_env(load)
    argv = [*argv[:3], *load_args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    offline = run_cli(*[a for a in load_args if a != "--to-kafka"])
    assert offline.returncode == 0, offline.stderr
    load_facts = offline.stdout.encode().splitlines()
    assert len(load_facts) == 3000

    # An external client posts facts of other instances to the gateway.
    gateway = stack.services["gateway"][0]
    posted = run_cli("generate", "--facts", "1000", "--instances", "10", "--seed", "9")
    gateway_facts = posted.stdout.encode().splitlines()
    response = httpx.post(
        f"http://127.0.0.1:{gateway.ports[8080]}/v1/facts",
        content=b"\n".join(gateway_facts),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    assert response.status_code == 200, response.text

    expected = reference_events(load_facts + gateway_facts)
    store = stack.volumes(stack.services["receiver"][0])["/data"] / "received.jsonl"
    deadline = time.monotonic() + 120
    while len(received_events(store)) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # anything extra (a duplicate) would arrive now
    verdict = compare(received_events(store), expected)
    assert verdict.passed, verdict.detail

    # Every service's metrics endpoint, at the port its health check uses; together
    # they export every metric the alert rules and the dashboard use.
    exported: set[str] = set()
    for name in ("gateway", "stream", "sink"):
        for service in stack.services[name]:
            url = stack.health_url(service).rsplit("/", 1)[0] + "/metrics"
            scraped = httpx.get(url, timeout=5)
            assert scraped.status_code == 200
            assert re.search(
                rf'^codex_analytics_build_info{{.*service="{name}"', scraped.text, re.M
            )
            exported |= exported_names(scraped.text)
    assert not names_used() - exported - SCRAPE_SERIES
    stream_facts = 0
    stream_partitions = 0
    lags: dict[str, float] = {}
    for service in stack.services["stream"]:
        snapshot = MetricsSnapshot()
        snapshot.add_text(httpx.get(stack.health_url(service).rsplit("/", 1)[0] + "/metrics").text)
        stream_facts += snapshot.total("codex_stream_facts_total")
        stream_partitions += snapshot.total("codex_stream_assigned_partitions")
        lags |= {
            f"{name}{dict(labels)}": value
            for (name, labels), value in snapshot.samples.items()
            if name.startswith("codex_stream_consumer_lag_")
        }
    assert stream_partitions == partitions  # the two replicas share every partition
    # Everything delivered: every partition caught up, in records and in seconds.
    assert len(lags) == 2 * partitions
    assert not any(lags.values()), lags
    assert stream_facts >= len(load_facts) + len(gateway_facts)  # at least once
    accounts = {orjson.loads(line)["account_id"] for line in store.read_bytes().splitlines()}
    assert accounts == {p.name for p in (ROOT / "deploy" / "local-secrets").iterdir()}
    codes = stack.stop()
    assert all(code == 0 for code in codes.values()), codes
