"""deploy/kubernetes/, checked without a cluster and without the kustomize binary.

The base and every overlay are rendered (:mod:`tests.kustomize`), then:

1. every object validates against the Kubernetes OpenAPI schemas (``kubernetes-validate``,
   which bundles them: no network), strictly (an unknown field is an error), for the
   oldest Kubernetes we support and the newest the validator knows;
2. the manifests agree with the code: every variable a pod of ours gets is a declared
   setting its command reads, the addresses the services bind are the ports the probes,
   the Service and the scrape annotations use, the grace period outlasts the shutdown
   timeout, selectors select, every ConfigMap and Secret a pod needs is rendered or is
   one the operator creates as docs/kubernetes.md says, and the pods meet the
   "restricted" Pod Security Standard with a read-only root file system.

The checks return their findings as lines; ``test_a_broken_copy_is_caught`` breaks a copy
of the manifests in each way the checks are for and expects the finding, so none of
them can pass for want of looking.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from codex_analytics.cli.settings_catalog import Variable, catalog, reads
from tests.cli import ROOT
from tests.kustomize import KustomizeError, Obj, pod_spec, render, split_image

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/production", "overlays/local")
DOCS = ROOT / "docs" / "kubernetes.md"
#: The oldest Kubernetes the manifests support (docs/kubernetes.md) and the newest the
#: validator bundles.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: The project's image, as the base names it (overlays rename it).
IMAGE = "codex-analytics"
#: Probes of the long-running services: liveness never asks the broker.
PROBE_PATHS = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
SERVICES = ("gateway", "stream worker", "sink worker")
WRITABLE_PATH_SETTINGS = ("ANALYTICS_STREAM_DATA_DIR", "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE")
SHUTDOWN_SETTING = "ANALYTICS_SHUTDOWN_TIMEOUT_S"
PARTITIONS_SETTING = "ANALYTICS_TOPIC_PARTITIONS"
#: The margin the issue asks between the shutdown timeout and the kubelet's SIGKILL.
GRACE_MARGIN_S = 5
DEFAULT_GRACE_S = 30


# -- what the manifests say -----------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container of ours in a rendered workload, with the environment it gets."""

    workload: Obj
    spec: Obj
    #: Every variable: its value, or None when it comes from a Secret.
    env: dict[str, str | None]
    #: The ConfigMaps it imports whole (envFrom), by name.
    config_maps: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}"

    @property
    def command(self) -> str:
        """The codex-analytics subcommand path: ``stream worker``, ``topics apply``."""
        words = []
        for arg in self.spec.get("args", []):
            if arg.startswith("-"):
                break
            words.append(arg)
        return " ".join(words)

    @property
    def pod(self) -> Obj:
        return pod_spec(self.workload) or {}

    def ports(self) -> dict[str, int]:
        return {
            str(p.get("name", p["containerPort"])): p["containerPort"]
            for p in self.spec.get("ports", [])
        }

    def port_number(self, port: int | str) -> int | None:
        if isinstance(port, int):
            return port if port in self.ports().values() else None
        return self.ports().get(port)

    def mount_for(self, path: str) -> tuple[Obj, Obj] | None:
        """The volume mount holding ``path`` (the deepest), and its volume."""
        mounts = [
            m
            for m in self.spec.get("volumeMounts", [])
            if (path + "/").startswith(m["mountPath"].rstrip("/") + "/")
        ]
        if not mounts:
            return None
        mount = max(mounts, key=lambda m: len(m["mountPath"]))
        volume = next(v for v in self.pod.get("volumes", []) if v["name"] == mount["name"])
        return mount, volume


def project_containers(objects: list[Obj]) -> Iterator[Container]:
    config_maps = {
        o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
    }
    for workload in objects:
        pod = pod_spec(workload)
        for spec in (pod or {}).get("containers", []):
            if not is_project_image(spec["image"]):
                continue
            env: dict[str, str | None] = {}
            imported = []
            for source in spec.get("envFrom", []):
                ref = source.get("configMapRef", {})
                imported.append(ref.get("name", ""))
                env.update(config_maps.get(ref.get("name"), {}))
            for var in spec.get("env", []):
                env[var["name"]] = var.get("value")
            yield Container(workload, spec, env, tuple(imported))


def is_project_image(image: str) -> bool:
    name = split_image(image)[0]
    return name == IMAGE or name.endswith("/" + IMAGE)


@cache
def variables() -> dict[str, Variable]:
    return {name: v for v in catalog() for name in v.declaration.names}


@cache
def declared_elsewhere() -> frozenset[str]:
    """The allow-list of settings another branch declares (see the file's comment)."""
    lines = (ROOT / "tests" / "data" / "settings_declared_elsewhere.txt").read_text().splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def command_reads(command: str, name: str) -> bool | None:
    """Whether ``command`` reads ``name``; None when the catalog knows no reader of that
    command yet (a command another branch adds) or does not know the name."""
    variable = variables().get(name)
    if variable is None:
        return None
    known = {reader for v in variables().values() for reader in v.used_by}
    if not any(reads(reader, command) for reader in known):
        return None
    return variable.reading_for(command) is not None


def setting(container: Container, name: str) -> Any:
    """The value the container's command reads for ``name``: its text, else the default."""
    raw = container.env.get(name)
    variable = variables()[name]
    reading = variable.reading_for(container.command) or variable.declaration
    return reading.read({name: raw} if raw is not None else {})


@cache
def documented_secret_keys() -> dict[str, set[str]]:
    """Secrets the operator creates, and their keys, from the table in docs/kubernetes.md
    ("*" for a Secret of one key per account)."""
    keys: dict[str, set[str]] = {}
    for line in DOCS.read_text().splitlines():
        row = re.match(
            r"\| `(codex-analytics[a-z-]*)` \| (?:`([^`]+)`|(one key per account))", line
        )
        if row:
            keys.setdefault(row.group(1), set()).add(row.group(2) or "*")
    return keys


# -- the checks: each returns what is wrong, one line a finding ----------------------


def schema_findings(objects: list[Obj]) -> list[str]:
    found = []
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                found.append(f"{_id(obj)}: Kubernetes {version} schema: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                found.append(f"{_id(obj)}: {exc.message}")
    return found


def settings_findings(objects: list[Obj]) -> list[str]:
    """Every variable is a declared setting, read by the command that gets it (by one of
    the commands importing it, for a shared ConfigMap), and no command of ours reaches
    for Kafka without KAFKA_BOOTSTRAP_SERVERS (it would start a private broker)."""
    found = []
    elsewhere = declared_elsewhere()
    importers: dict[str, set[str]] = {}
    for container in project_containers(objects):
        for name in container.config_maps:
            importers.setdefault(name, set()).add(container.command)
    config_maps = {
        o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
    }
    for container in project_containers(objects):
        for name in container.env:
            if name not in variables() and name not in elsewhere:
                found.append(f"{container.name}: {name} is not a declared setting")
        for var in container.spec.get("env", []):
            if command_reads(container.command, var["name"]) is False:
                found.append(
                    f"{container.name}: {var['name']} is not read by `{container.command}`"
                )
        if command_reads(container.command, "KAFKA_BOOTSTRAP_SERVERS") and not container.env.get(
            "KAFKA_BOOTSTRAP_SERVERS"
        ):
            found.append(
                f"{container.name}: no KAFKA_BOOTSTRAP_SERVERS: it would start an embedded broker"
            )
    for map_name, commands in importers.items():
        for name in config_maps.get(map_name, {}):
            verdicts = {command_reads(command, name) for command in commands}
            if verdicts == {False}:
                found.append(f"ConfigMap/{map_name}: {name} is read by none of {sorted(commands)}")
    return found


def address_findings(objects: list[Obj]) -> list[str]:
    """The services bind all interfaces on a declared port; probes, scrape annotations
    and Services use those ports; liveness never depends on readiness's checks."""
    found = []
    for container in project_containers(objects):
        bound: set[int] = set()
        for name, value in container.env.items():
            variable = variables().get(name)
            if value is None or variable is None or variable.declaration.kind.label != "HOST:PORT":
                continue
            host, _, port = value.rpartition(":")
            if host not in ("0.0.0.0", "[::]"):
                found.append(
                    f"{container.name}: {name}={value}: kubelet probes the pod's IP, bind 0.0.0.0"
                )
            if container.port_number(int(port)) is None:
                found.append(f"{container.name}: {name}={value}: port {port} is no containerPort")
            bound.add(int(port))
        for kind, path in PROBE_PATHS.items():
            probe = container.spec.get(kind)
            if probe is None:
                if container.command in SERVICES:
                    found.append(f"{container.name}: no {kind}")
                continue
            action = probe.get("httpGet") or probe.get("tcpSocket") or {}
            number = container.port_number(action.get("port", ""))
            if number not in bound:
                found.append(
                    f"{container.name}: {kind} port {action.get('port')} is not a bound address's port {sorted(bound)}"
                )
            if container.command in SERVICES and probe.get("httpGet", {}).get("path") != path:
                found.append(f"{container.name}: {kind} must GET {path}")
        annotations = container.workload["spec"]["template"]["metadata"].get("annotations", {})
        if (
            "prometheus.io/port" in annotations
            and int(annotations["prometheus.io/port"]) not in bound
        ):
            found.append(
                f"{container.name}: prometheus.io/port {annotations['prometheus.io/port']} serves no /metrics"
            )
    return found


def shutdown_findings(objects: list[Obj]) -> list[str]:
    """terminationGracePeriodSeconds > preStop + ANALYTICS_SHUTDOWN_TIMEOUT_S + 5 s."""
    found = []
    for container in project_containers(objects):
        if not command_reads(container.command, SHUTDOWN_SETTING):
            continue
        timeout = setting(container, SHUTDOWN_SETTING)
        pre_stop = (
            container.spec.get("lifecycle", {})
            .get("preStop", {})
            .get("exec", {})
            .get("command", [])
        )
        sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
        grace = container.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        if not grace > sleep + timeout + GRACE_MARGIN_S:
            found.append(
                f"{container.name}: terminationGracePeriodSeconds {grace} <= preStop {sleep:g} + "
                f"{SHUTDOWN_SETTING} {timeout:g} + {GRACE_MARGIN_S}"
            )
    return found


def selector_findings(objects: list[Obj]) -> list[str]:
    """A workload selects its own pods and no other workload's; every Service and
    PodDisruptionBudget selects the pods of exactly one workload."""
    found = []
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]

    def selects(selector: dict[str, str], workload: Obj) -> bool:
        labels = workload["spec"]["template"]["metadata"].get("labels", {})
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    for workload in workloads:
        selector = workload["spec"]["selector"].get("matchLabels", {})
        others = [_id(w) for w in workloads if w is not workload and selects(selector, w)]
        if not selects(selector, workload):
            found.append(f"{_id(workload)}: its selector does not match its pod labels")
        if others:
            found.append(f"{_id(workload)}: its selector also matches {others}")
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"].get("selector", {})
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"].get("matchLabels", {})
        else:
            continue
        selected = [w for w in workloads if selects(selector, w)]
        if len(selected) != 1:
            found.append(f"{_id(obj)}: selects {len(selected)} workloads, not 1")
        elif obj["kind"] == "Service":
            target = Container(
                selected[0], selected[0]["spec"]["template"]["spec"]["containers"][0], {}, ()
            )
            for port in obj["spec"]["ports"]:
                if target.port_number(port.get("targetPort", port["port"])) is None:
                    found.append(
                        f"{_id(obj)}: targetPort {port.get('targetPort')} is no port of {_id(selected[0])}"
                    )
    return found


def reference_findings(objects: list[Obj]) -> list[str]:
    """Every ConfigMap a pod imports is rendered; every Secret it uses, and every key,
    is rendered or documented for the operator to create; every *_FILE setting and the
    secrets directory point into a volume that holds them."""
    found = []
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    documented = documented_secret_keys()

    def check_secret(where: str, name: str, key: str) -> None:
        secret = rendered.get(("Secret", name))
        keys = set((secret or {}).get("data", {})) | set((secret or {}).get("stringData", {}))
        if secret is None and name not in documented:
            found.append(f"{where}: Secret {name} is neither rendered nor in {DOCS.name}")
        elif key not in keys | documented.get(name, set()) and "*" not in documented.get(
            name, set()
        ):
            found.append(
                f"{where}: key {key} of Secret {name} is neither rendered nor in {DOCS.name}"
            )

    for container in project_containers(objects):
        for name in container.config_maps:
            if ("ConfigMap", name) not in rendered:
                found.append(f"{container.name}: envFrom ConfigMap {name} is not rendered")
        for var in container.spec.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                check_secret(container.name, ref["name"], ref["key"])
        for name, value in container.env.items():
            if value is None or not (name.endswith("_FILE") or name == "ANALYTICS_SECRETS_DIR"):
                continue
            held = container.mount_for(value)
            if held is None:
                found.append(f"{container.name}: {name}={value} is in no volume")
            elif "secret" in held[1]:
                key = value[len(held[0]["mountPath"]) :].strip("/") or "*"
                check_secret(f"{container.name} {name}", held[1]["secret"]["secretName"], key)
    return found


def pod_security_findings(objects: list[Obj]) -> list[str]:
    """The "restricted" Pod Security Standard, plus a read-only root file system for our
    containers with every path they write on a writable volume."""
    found = []
    for workload in objects:
        pod = pod_spec(workload)
        if pod is None:
            continue
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True:
            found.append(f"{_id(workload)}: runAsNonRoot is not true")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            found.append(f"{_id(workload)}: no RuntimeDefault seccomp profile")
        if any("hostPath" in v for v in pod.get("volumes", [])):
            found.append(f"{_id(workload)}: a hostPath volume")
        for spec in pod["containers"]:
            own = spec.get("securityContext", {})
            if own.get("allowPrivilegeEscalation") is not False:
                found.append(
                    f"{_id(workload)} {spec['name']}: allowPrivilegeEscalation is not false"
                )
            if own.get("capabilities", {}).get("drop") != ["ALL"]:
                found.append(f"{_id(workload)} {spec['name']}: capabilities are not all dropped")
    for container in project_containers(objects):
        if container.spec.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"{container.name}: the root file system is not read-only")
        for name in WRITABLE_PATH_SETTINGS:
            path = container.env.get(name)
            if path is None:
                continue
            held = container.mount_for(path if name.endswith("_DIR") else str(Path(path).parent))
            if (
                held is None
                or held[0].get("readOnly")
                or not {"emptyDir", "persistentVolumeClaim"} & set(held[1])
            ):
                found.append(f"{container.name}: {name}={path} is on no writable volume")
    return found


def capacity_findings(objects: list[Obj]) -> list[str]:
    """Requests and a memory limit on every container; no more stream or sink replicas
    than partitions (the rest would idle); our image pinned."""
    found = []
    for workload in objects:
        for spec in (pod_spec(workload) or {}).get("containers", []):
            resources = spec.get("resources", {})
            if not {"cpu", "memory"} <= set(
                resources.get("requests", {})
            ) or "memory" not in resources.get("limits", {}):
                found.append(
                    f"{_id(workload)} {spec['name']}: needs cpu and memory requests and a memory limit"
                )
    for container in project_containers(objects):
        if container.command in ("stream worker", "sink worker"):
            replicas = container.workload["spec"].get("replicas", 1)
            partitions = setting(container, PARTITIONS_SETTING)
            if replicas > partitions:
                found.append(f"{container.name}: {replicas} replicas for {partitions} partitions")
        reference = split_image(container.spec["image"])[1]
        if reference in ("", ":latest"):
            found.append(f"{container.name}: image {container.spec['image']} is not pinned")
    return found


CHECKS: tuple[Callable[[list[Obj]], list[str]], ...] = (
    settings_findings,
    address_findings,
    shutdown_findings,
    selector_findings,
    reference_findings,
    pod_security_findings,
    capacity_findings,
)


def findings(objects: list[Obj]) -> list[str]:
    """Everything wrong; the cross-checks read schema-valid objects only."""
    return schema_findings(objects) or [line for check in CHECKS for line in check(objects)]


def _id(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# -- the tests ------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate reads and parses its schema files (a 1 MB definitions file
    among them) on every call, 30 ms an object; they are read-only data, so each is read
    once here, which keeps the broken-copy cases cheap."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kubernetes_validate.utils,
            "schema_contents",
            cache(kubernetes_validate.utils.schema_contents),
        )
        yield


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(KUBERNETES / request.param)


def test_the_manifests_validate_and_agree_with_the_code(rendered: list[Obj]) -> None:
    assert findings(rendered) == []


def test_each_kustomization_renders_the_whole_pipeline(rendered: list[Obj]) -> None:
    commands = {c.command for c in project_containers(rendered)}
    assert {"gateway", "stream worker", "sink worker", "topics apply"} <= commands
    kinds = {_id(o) for o in rendered}
    assert {"Service/gateway", "Job/topics", "ServiceAccount/codex-analytics"} <= kinds
    assert {f"PodDisruptionBudget/{name}" for name in ("gateway", "stream", "sink")} <= kinds
    # Generated names carry the content's hash, so a changed setting rolls the pods.
    assert all(
        re.fullmatch(r"codex-analytics(-\w+)?-[0-9a-z]{10}", o["metadata"]["name"])
        for o in rendered
        if o["kind"] == "ConfigMap"
    )


def test_overlays_set_their_namespace_image_and_cluster() -> None:
    production = render(KUBERNETES / "overlays" / "production")
    assert {o["metadata"].get("namespace") for o in production if o["kind"] != "Namespace"} == {
        "codex-analytics"
    }
    containers = list(project_containers(production))
    assert {c.spec["image"] for c in containers} == {"registry.example.com/codex-analytics:0.1.0"}
    for container in containers:
        assert "SASL_SSL" in container.env.values()  # the security protocol
        volume = next(v for v in container.pod["volumes"] if v["name"] == "kafka-credentials")
        assert volume["secret"]["optional"] is False  # the targeted patch reached every workload
    local = render(KUBERNETES / "overlays" / "local")
    assert {
        c.env["KAFKA_BOOTSTRAP_SERVERS"]
        for c in project_containers(local)
        if c.command != "receiver"
    } == {"kafka:9092"}
    assert {"Deployment/kafka", "Service/kafka", "Service/receiver"} <= {_id(o) for o in local}


def test_the_setup_phase_holds_what_the_topics_job_needs() -> None:
    """docs/kubernetes.md applies ``-l codex-analytics/phase=setup`` first: the Job, its
    ServiceAccount, the ConfigMap it imports and the Namespace."""
    objects = render(KUBERNETES / "overlays" / "production")
    setup = {
        _id(o)
        for o in objects
        if o["metadata"].get("labels", {}).get("codex-analytics/phase") == "setup"
    }
    job = next(c for c in project_containers(objects) if c.command == "topics apply")
    needs = {
        "Job/topics",
        "Namespace/codex-analytics",
        f"ServiceAccount/{job.pod['serviceAccountName']}",
    }
    needs |= {f"ConfigMap/{name}" for name in job.config_maps}
    assert setup == needs


def test_the_allow_list_holds_only_undeclared_names() -> None:
    """Names the other branch has declared leave the allow-list, so it only shrinks."""
    assert declared_elsewhere()
    assert not declared_elsewhere() & set(variables())


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\nreplicas:\n  - name: x\n    count: 2\n"
    )
    with pytest.raises(KustomizeError, match="replicas"):
        render(tmp_path)


def _edit(old: str, new: str, path: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        file = root / path
        text = file.read_text()
        assert old in text, f"{path} no longer holds {old!r}: update this case"
        file.write_text(text.replace(old, new, 1))

    return edit


# A misspelt name is built, not written: the settings test reads every name in the code.
MISSPELT = "ANALYTICS_STREAM_STORE".replace("STORE", "STROE")

BROKEN: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "an unknown field": (
        "base",
        _edit("readinessProbe:", "readinesProbe:", "base/sink.yaml"),
        "'readinesProbe' was unexpected",
    ),
    "a wrong type": (
        "base",
        _edit("replicas: 2", 'replicas: "two"', "base/stream.yaml"),
        "is not of type 'integer'",
    ),
    "a misspelt setting": (
        "base",
        _edit("ANALYTICS_STREAM_STORE=", f"{MISSPELT}=", "base/stream.env"),
        f"{MISSPELT} is not a declared setting",
    ),
    "a setting another service reads": (
        "base",
        _edit(
            "ANALYTICS_GATEWAY_MAX_CONCURRENT_REQUESTS",
            "ANALYTICS_BATCH_MAX_EVENTS=9\nANALYTICS_GATEWAY_MAX_CONCURRENT_REQUESTS",
            "base/gateway.env",
        ),
        "ANALYTICS_BATCH_MAX_EVENTS is read by none of ['gateway']",
    ),
    "no bootstrap servers": (
        "base",
        _edit("KAFKA_BOOTSTRAP_SERVERS=kafka:9092\n", "", "base/common.env"),
        "it would start an embedded broker",
    ),
    "a probe on another port": (
        "base",
        _edit('value: "0.0.0.0:9465"', 'value: "0.0.0.0:9466"', "base/stream.yaml"),
        "port 9466 is no containerPort",
    ),
    "a loopback address": (
        "base",
        _edit('value: "0.0.0.0:9464"', 'value: "127.0.0.1:9464"', "base/sink.yaml"),
        "bind 0.0.0.0",
    ),
    "liveness on readiness": (
        "base",
        _edit("path: /livez", "path: /readyz", "base/gateway.yaml"),
        "startupProbe must GET /livez",
    ),
    "a scrape port that serves nothing": (
        "base",
        _edit('prometheus.io/port: "9464"', 'prometheus.io/port: "9000"', "base/sink.yaml"),
        "prometheus.io/port 9000",
    ),
    "a short grace period": (
        "base",
        _edit(
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 25",
            "base/sink.yaml",
        ),
        "terminationGracePeriodSeconds 25 <= preStop 0 + ANALYTICS_SHUTDOWN_TIMEOUT_S 20 + 5",
    ),
    "a longer shutdown timeout": (
        "overlays/local",
        _edit(
            "ANALYTICS_TOPIC_REPLICATION_FACTOR=1",
            "ANALYTICS_TOPIC_REPLICATION_FACTOR=1\nANALYTICS_SHUTDOWN_TIMEOUT_S=40",
            "overlays/local/common.env",
        ),
        "Deployment/stream: terminationGracePeriodSeconds 30",
    ),
    "a Service selecting nothing": (
        "base",
        _edit(
            "app.kubernetes.io/component: gateway\n  ports:",
            "app.kubernetes.io/component: gatewy\n  ports:",
            "base/gateway.yaml",
        ),
        "Service/gateway: selects 0 workloads",
    ),
    "a budget selecting nothing": (
        "base",
        _edit("component: sink\n", "component: sinks\n", "base/disruption-budgets.yaml"),
        "PodDisruptionBudget/sink: selects 0 workloads",
    ),
    "a missing ConfigMap": (
        "base",
        _edit("name: codex-analytics-sink\n", "name: codex-analytics-sinks\n", "base/sink.yaml"),
        "envFrom ConfigMap codex-analytics-sinks is not rendered",
    ),
    "an undocumented Secret key": (
        "overlays/production",
        _edit("kafka/sasl-password", "kafka/sasl-passwd", "overlays/production/common.env"),
        "key sasl-passwd of Secret codex-analytics-kafka",
    ),
    "a file outside any volume": (
        "overlays/production",
        _edit(
            "/var/run/secrets/codex-analytics/kafka/ca.crt",
            "/etc/kafka/ca.crt",
            "overlays/production/common.env",
        ),
        "/etc/kafka/ca.crt is in no volume",
    ),
    "a data directory on the read-only root": (
        "base",
        _edit(
            "ANALYTICS_STREAM_DATA_DIR=/var/lib/codex-analytics/stream",
            "ANALYTICS_STREAM_DATA_DIR=/var/lib/stream",
            "base/stream.env",
        ),
        "is on no writable volume",
    ),
    "a container running as root": (
        "base",
        _edit(
            "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "base/gateway.yaml"
        ),
        "allowPrivilegeEscalation is not false",
    ),
    "more workers than partitions": (
        "overlays/production",
        _edit("replicas: 4", "replicas: 13", "overlays/production/scale.yaml"),
        "13 replicas for 12 partitions",
    ),
    "no memory limit": (
        "base",
        _edit("            limits:\n              memory: 384Mi\n", "", "base/sink.yaml"),
        "needs cpu and memory requests and a memory limit",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_copy_is_caught(case: str, tmp_path: Path) -> None:
    kustomization, edit, expected = BROKEN[case]
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    edit(copy)
    found = findings(render(copy / kustomization))
    assert any(expected in line for line in found), found


def test_a_patch_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    _edit(
        "name: sink\nspec:\n  replicas: 3",
        "name: sinc\nspec:\n  replicas: 3",
        "overlays/production/scale.yaml",
    )(copy)
    with pytest.raises(KustomizeError, match="matches no object"):
        render(copy / "overlays" / "production")
