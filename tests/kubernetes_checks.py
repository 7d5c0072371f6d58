"""What deploy/kubernetes/ must hold, as checks over rendered objects.

Each check returns its findings, one line each (empty: nothing wrong), so a test can
assert that the real manifests have none and that a broken copy has the expected one.
The checks hold the manifests against the Kubernetes schemas and against the code:
the settings declarations (:func:`codex_analytics.cli.settings_catalog.catalog`), the
services' addresses and shutdown timeout, and the Secrets docs/kubernetes.md tells the
operator to create.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate

from codex_analytics.cli.main import build_parser
from codex_analytics.cli.settings_catalog import Variable, catalog, reads
from tests.cli import ROOT
from tests.kustomize import Obj, pod_spec, split_image

DOCS = ROOT / "docs" / "kubernetes.md"
#: The oldest Kubernetes the manifests support (docs/kubernetes.md) and the newest the
#: validator bundles.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: The project's image as the base names it (overlays give it a registry and a tag).
IMAGE = "codex-analytics"
#: The long-running services and their probes: liveness never asks the broker.
SERVICES = ("gateway", "stream worker", "sink worker")
PROBE_PATHS = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
WORKERS = ("stream worker", "sink worker")
#: Paths a service writes: on a writable volume, the root file system being read-only.
WRITTEN_DIRECTORIES = ("ANALYTICS_STREAM_DATA_DIR",)
WRITTEN_FILES = ("CODEX_ANALYTICS_EVENTS_CAPTURE_FILE",)
WRITABLE_VOLUMES = {"emptyDir", "persistentVolumeClaim", "ephemeral"}
#: The volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    *WRITABLE_VOLUMES,
    *("configMap", "csi", "downwardAPI", "projected", "secret"),
}
SHUTDOWN_TIMEOUT = "ANALYTICS_SHUTDOWN_TIMEOUT_S"
PARTITIONS = "ANALYTICS_TOPIC_PARTITIONS"
BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"
SECRETS_DIR = "ANALYTICS_SECRETS_DIR"
#: The margin the issue asks between the shutdown timeout and the kubelet's SIGKILL.
GRACE_MARGIN_S = 5
DEFAULT_GRACE_S = 30  # Kubernetes' own


@dataclass(frozen=True)
class Container:
    """A container of ours in a rendered workload, with the environment it gets."""

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
    def pod(self) -> Obj:
        return pod_spec(self.workload) or {}

    @property
    def command(self) -> str:
        """The codex-analytics subcommand: ``stream worker``, ``topics apply``."""
        words = []
        for arg in self.spec.get("args", []):
            if arg.startswith("-"):
                break
            words.append(arg)
        return " ".join(words)

    def port_number(self, port: int | str) -> int | None:
        return port_number(self.spec, port)

    def bound_ports(self) -> set[int]:
        """The ports of the addresses (declared ``HOST:PORT`` settings) it listens on."""
        return {int(value.rpartition(":")[2]) for _, value in self.addresses()}

    def addresses(self) -> Iterator[tuple[str, str]]:
        for name, value in self.env.items():
            variable = variables().get(name)
            if value is not None and variable and variable.declaration.kind.label == "HOST:PORT":
                yield name, value

    def volume_holding(self, path: str) -> tuple[Obj, Obj] | None:
        """The (deepest) volume mount holding ``path``, and its volume."""
        mounts = [
            m
            for m in self.spec.get("volumeMounts", [])
            if (path.rstrip("/") + "/").startswith(m["mountPath"].rstrip("/") + "/")
        ]
        if not mounts:
            return None
        mount = max(mounts, key=lambda m: len(m["mountPath"]))
        return mount, next(v for v in self.pod["volumes"] if v["name"] == mount["name"])

    def reads(self, name: str) -> bool | None:
        """Whether its command reads ``name``: None when the catalog does not know the
        name or names no reader of the command (a command another branch adds)."""
        variable = variables().get(name)
        if variable is None or not any(reads(r, self.command) for r in known_readers()):
            return None
        return variable.reading_for(self.command) is not None

    def setting(self, name: str) -> Any:
        """The value its command reads for the declared ``name``."""
        variable = variables()[name]
        reading = variable.reading_for(self.command) or variable.declaration
        raw = self.env.get(name)
        return reading.read({} if raw is None else {name: raw})


#: Kinds whose reading checks the file system: of the pod, which the test cannot see.
POD_PATHS = frozenset({"read_dir", "read_file", "write_dir", "write_file"})


@dataclass
class Manifests:
    """The objects one kustomization renders, indexed for the checks."""

    objects: list[Obj]
    by_id: dict[str, Obj] = field(init=False)
    containers: list[Container] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {object_id(o): o for o in self.objects}
        self.containers = list(self._containers())

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if pod_spec(o) is not None]

    def selected(self, selector: dict[str, str]) -> list[Obj]:
        """The long-running workloads whose pods carry every label of ``selector``."""
        return [
            w
            for w in self.workloads()
            if w["kind"] != "Job"
            and selector
            and selector.items() <= w["spec"]["template"]["metadata"].get("labels", {}).items()
        ]

    def config_map(self, name: str) -> dict[str, str] | None:
        found = self.by_id.get(f"ConfigMap/{name}")
        return None if found is None else dict(found.get("data", {}))

    def _containers(self) -> Iterator[Container]:
        for workload in self.workloads():
            for spec in workload["spec"]["template"]["spec"]["containers"]:
                if split_image(spec["image"])[0].rpartition("/")[2] != IMAGE:
                    continue  # Kafka in the local overlay: not ours to cross-check
                env: dict[str, str | None] = {}
                sources = spec.get("envFrom", [])
                imported = tuple(s["configMapRef"]["name"] for s in sources if "configMapRef" in s)
                for name in imported:
                    env.update(self.config_map(name) or {})
                env.update({var["name"]: var.get("value") for var in spec.get("env", [])})
                yield Container(workload, spec, env, imported)


def object_id(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def port_number(container: Obj, port: int | str) -> int | None:
    """A probe's, a Service's or a policy's port (a number or a name) as one of the
    container's ports; None when it has no such port."""
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if isinstance(port, int):
        return port if port in ports.values() else None
    return ports.get(port)


@cache
def variables() -> dict[str, Variable]:
    return {name: v for v in catalog() for name in v.declaration.names}


@cache
def known_readers() -> frozenset[str]:
    return frozenset(reader for v in variables().values() for reader in v.used_by)


@cache
def documented_secret_keys() -> dict[str, frozenset[str]]:
    """The Secrets the operator creates and their keys, from the table of
    docs/kubernetes.md ("*": any key, one per account)."""
    keys: dict[str, set[str]] = {}
    row = re.compile(r"\| `(codex-analytics[a-z-]*)` \| (?:`([^`]+)`|one key per account)")
    for found in filter(None, map(row.match, DOCS.read_text().splitlines())):
        keys.setdefault(found.group(1), set()).add(found.group(2) or "*")
    return {name: frozenset(names) for name, names in keys.items()}


# -- the checks -----------------------------------------------------------------------


def schema_findings(objects: list[Obj]) -> list[str]:
    """Each object against the Kubernetes OpenAPI schemas, strictly (an unknown field
    is an error), of the oldest and the newest Kubernetes supported."""
    found = []
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(map(str, exc.path))
                found.append(f"{object_id(obj)}: Kubernetes {version}: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                found.append(f"{object_id(obj)}: {exc.message}")
    return found


def command_findings(manifests: Manifests) -> list[str]:
    """Every container of ours runs a command line codex-analytics accepts."""
    found = []
    parser = build_parser()
    for container in manifests.containers:
        args = container.spec.get("args", [])
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parser.parse_args(args)
        except SystemExit:
            found.append(f"{container.name}: codex-analytics refuses the arguments {args}")
    return found


def settings_findings(manifests: Manifests) -> list[str]:
    """Every variable is a declared setting with a value it accepts, read by the
    command that gets it (by one of the commands importing it, for a shared ConfigMap);
    and no command of ours needs Kafka without KAFKA_BOOTSTRAP_SERVERS (unset, it would
    start a private broker)."""
    found = []
    importers: dict[str, list[Container]] = {}
    for container in manifests.containers:
        for name in container.config_maps:
            importers.setdefault(name, []).append(container)
        for name, value in container.env.items():
            variable = variables().get(name)
            if variable is None:
                found.append(f"{container.name}: {name} is not a declared setting")
                continue
            reading = variable.reading_for(container.command) or variable.declaration
            if reading.kind.probe in POD_PATHS:
                # The path exists in the pod (a mounted volume), not on this machine.
                if value is not None and not value.startswith("/"):
                    found.append(f"{container.name}: {name} is not an absolute path: {value!r}")
                continue
            try:
                reading.read({} if value is None else {name: value})
            except ValueError as exc:
                found.append(f"{container.name}: {exc}")
        for var in container.spec.get("env", []):
            if container.reads(var["name"]) is False:
                found.append(f"{container.name}: {var['name']} is not read by {container.command}")
        if container.reads(BOOTSTRAP) and not container.env.get(BOOTSTRAP):
            found.append(f"{container.name}: no {BOOTSTRAP}: it would start an embedded broker")
    for map_name, containers in importers.items():
        for name in manifests.config_map(map_name) or {}:
            if {c.reads(name) for c in containers} == {False}:
                readers = sorted({c.command for c in containers})
                found.append(f"ConfigMap/{map_name}: {name} is read by none of {readers}")
    return found


def address_findings(manifests: Manifests) -> list[str]:
    """The services listen on all interfaces, on container ports; the probes and the
    scrape annotation use those ports; the probes of the services use /livez for
    startup and liveness (which never ask Kafka) and /readyz for readiness."""
    found = []
    for container in manifests.containers:
        for name, value in container.addresses():
            host, _, port = value.rpartition(":")
            if host not in ("0.0.0.0", "[::]"):
                found.append(f"{container.name}: {name}={value}: the kubelet probes the pod IP")
            if container.port_number(int(port)) is None:
                found.append(f"{container.name}: {name}={value}: {port} is no containerPort")
        bound = container.bound_ports()
        for kind, path in PROBE_PATHS.items():
            probe = container.spec.get(kind)
            if probe is None:
                if container.command in SERVICES:
                    found.append(f"{container.name}: no {kind}")
                continue
            port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port", "")
            if container.port_number(port) not in bound:
                found.append(f"{container.name}: {kind} port {port} is none of {sorted(bound)}")
            if container.command in SERVICES and probe.get("httpGet", {}).get("path") != path:
                found.append(f"{container.name}: {kind} must GET {path}")
        annotations = container.workload["spec"]["template"]["metadata"].get("annotations", {})
        scraped = annotations.get("prometheus.io/port")
        if scraped is not None and int(scraped) not in bound:
            found.append(f"{container.name}: prometheus.io/port {scraped} serves no /metrics")
    return found


def shutdown_findings(manifests: Manifests) -> list[str]:
    """terminationGracePeriodSeconds > preStop + ANALYTICS_SHUTDOWN_TIMEOUT_S + 5 s."""
    found = []
    for container in manifests.containers:
        if not container.reads(SHUTDOWN_TIMEOUT):
            continue
        timeout = container.setting(SHUTDOWN_TIMEOUT)
        pre_stop = container.spec.get("lifecycle", {}).get("preStop", {})
        command = pre_stop.get("exec", {}).get("command", [])
        sleep = float(command[1]) if command[:1] == ["sleep"] else 0.0
        grace = container.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        if grace <= sleep + timeout + GRACE_MARGIN_S:
            found.append(
                f"{container.name}: terminationGracePeriodSeconds {grace} <= preStop {sleep:g}"
                f" + {SHUTDOWN_TIMEOUT} {timeout:g} + {GRACE_MARGIN_S}"
            )
    return found


def selector_findings(manifests: Manifests) -> list[str]:
    """A Deployment selects its own pods and no other workload's; a Service and a
    PodDisruptionBudget select the pods of exactly one workload, and a Service's
    target ports are ports of those pods."""
    found = []
    for workload in manifests.workloads():
        if workload["kind"] == "Job":
            continue  # its selector is generated
        matched = manifests.selected(workload["spec"]["selector"].get("matchLabels", {}))
        if workload not in matched:
            found.append(f"{object_id(workload)}: its selector does not match its pods")
        if len(matched) > 1:
            found.append(f"{object_id(workload)}: its selector matches {len(matched)} workloads")
    for obj in manifests.objects:
        if obj["kind"] == "Service":
            matched = manifests.selected(obj["spec"].get("selector", {}))
        elif obj["kind"] == "PodDisruptionBudget":
            matched = manifests.selected(obj["spec"]["selector"].get("matchLabels", {}))
        else:
            continue
        if len(matched) != 1:
            found.append(f"{object_id(obj)}: selects {len(matched)} workloads, not 1")
            continue
        container = matched[0]["spec"]["template"]["spec"]["containers"][0]
        for port in obj["spec"].get("ports", []):
            if port_number(container, port.get("targetPort", port["port"])) is None:
                found.append(
                    f"{object_id(obj)}: targetPort {port.get('targetPort')} is no pod port"
                )
    return found


def network_policy_findings(manifests: Manifests) -> list[str]:
    """A NetworkPolicy selects pods, and each port it opens is a port of one of them."""
    found = []
    for policy in (o for o in manifests.objects if o["kind"] == "NetworkPolicy"):
        pods = manifests.selected(policy["spec"]["podSelector"].get("matchLabels", {}))
        containers = [c for w in pods for c in w["spec"]["template"]["spec"]["containers"]]
        if not containers:
            found.append(f"{object_id(policy)}: selects no pods")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if not any(port_number(c, port["port"]) for c in containers):
                    found.append(f"{object_id(policy)}: port {port['port']} is no port of its pods")
    return found


def reference_findings(manifests: Manifests) -> list[str]:
    """Every ConfigMap a pod imports is rendered; every Secret and key it uses is
    rendered or in docs/kubernetes.md's table for the operator to create; every
    ``*_FILE`` setting and the secrets directory are in a volume."""
    found = []
    documented = documented_secret_keys()

    def check_secret(where: str, name: str, key: str | None) -> None:
        """``key`` None: the Secret is mounted whole."""
        rendered = manifests.by_id.get(f"Secret/{name}")
        if rendered is not None:
            keys = {*rendered.get("data", {}), *rendered.get("stringData", {})}
        elif name in documented:
            keys = set(documented[name])
        else:
            found.append(f"{where}: Secret {name} is neither rendered nor in {DOCS.name}")
            return
        if key is not None and key not in keys and "*" not in keys:
            found.append(
                f"{where}: key {key} of Secret {name} is neither rendered nor in {DOCS.name}"
            )

    for container in manifests.containers:
        for name in container.config_maps:
            if manifests.config_map(name) is None:
                found.append(f"{container.name}: envFrom ConfigMap {name} is not rendered")
        for var in container.spec.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                check_secret(container.name, ref["name"], ref["key"])
        for volume in container.pod.get("volumes", []):
            if "secret" in volume:
                check_secret(container.name, volume["secret"]["secretName"], None)
        for name, value in container.env.items():
            if value is None or not (name.endswith("_FILE") or name == SECRETS_DIR):
                continue
            held = container.volume_holding(value)
            if held is None:
                found.append(f"{container.name}: {name}={value} is in no volume")
            elif "secret" in held[1]:
                key = value[len(held[0]["mountPath"]) :].strip("/") or None
                check_secret(f"{container.name} {name}", held[1]["secret"]["secretName"], key)
    return found


def pod_security_findings(manifests: Manifests) -> list[str]:
    """The "restricted" Pod Security Standard and no Service links for every pod; our
    containers also have a read-only root file system, with what they write on a
    writable volume."""
    found = []
    for workload in manifests.workloads():
        pod = workload["spec"]["template"]["spec"]
        if pod.get("enableServiceLinks") is not False:
            # Services' addresses as variables: a Service named kafka adds KAFKA_-prefixed
            # ones, which read as misspelt settings.
            found.append(f"{object_id(workload)}: enableServiceLinks is not false")
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True:
            found.append(f"{object_id(workload)}: runAsNonRoot is not true")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            found.append(f"{object_id(workload)}: no RuntimeDefault seccomp profile")
        for volume in pod.get("volumes", []):
            if not set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES:
                found.append(f"{object_id(workload)}: volume {volume['name']} is not allowed")
        for spec in pod["containers"]:
            own = spec.get("securityContext", {})
            if own.get("allowPrivilegeEscalation") is not False:
                found.append(f"{object_id(workload)}: allowPrivilegeEscalation is not false")
            if own.get("capabilities", {}).get("drop") != ["ALL"]:
                found.append(f"{object_id(workload)}: capabilities are not all dropped")
    for container in manifests.containers:
        if container.spec.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"{container.name}: the root file system is not read-only")
        written = {name: container.env.get(name) for name in WRITTEN_DIRECTORIES}
        for name in WRITTEN_FILES:
            file = container.env.get(name)
            written[name] = None if file is None else str(Path(file).parent)
        for name, path in written.items():
            if path is None:
                continue  # unset: the service does not write there
            held = container.volume_holding(path)
            if held is None or held[0].get("readOnly") or not WRITABLE_VOLUMES & set(held[1]):
                found.append(f"{container.name}: {name} ({path}) is on no writable volume")
    return found


def capacity_findings(manifests: Manifests) -> list[str]:
    """Requests and a memory limit on every container; no more stream or sink replicas
    than partitions (the rest would idle); our image pinned to a tag or digest."""
    found = []
    for workload in manifests.workloads():
        for spec in workload["spec"]["template"]["spec"]["containers"]:
            resources = spec.get("resources", {})
            requested = set(resources.get("requests", {}))
            if not {"cpu", "memory"} <= requested or "memory" not in resources.get("limits", {}):
                found.append(
                    f"{object_id(workload)}: cpu and memory requests and a memory limit, please"
                )
    for container in manifests.containers:
        if container.command in WORKERS:
            replicas = container.workload["spec"].get("replicas", 1)
            partitions = container.setting(PARTITIONS)
            if replicas > partitions:
                found.append(f"{container.name}: {replicas} replicas for {partitions} partitions")
        if split_image(container.spec["image"])[1] in ("", ":latest"):
            found.append(f"{container.name}: image {container.spec['image']} is not pinned")
    return found


CROSS_CHECKS: tuple[Callable[[Manifests], list[str]], ...] = (
    command_findings,
    settings_findings,
    address_findings,
    shutdown_findings,
    selector_findings,
    network_policy_findings,
    reference_findings,
    pod_security_findings,
    capacity_findings,
)


def findings(objects: list[Obj]) -> list[str]:
    """Everything wrong with rendered objects. The cross-checks read schema-valid
    objects only, so they run when the schemas pass."""
    schema = schema_findings(objects)
    if schema:
        return schema
    manifests = Manifests(objects)
    return [line for check in CROSS_CHECKS for line in check(manifests)]
