"""deploy/kubernetes/, checked without a cluster and without the kustomize binary.

The base and every overlay are rendered (:mod:`tests.kustomize`), then
(:mod:`tests.kubernetes_checks`):

1. every object validates against the Kubernetes OpenAPI schemas (``kubernetes-validate``
   bundles them: no network), strictly (an unknown field is an error), for the oldest
   Kubernetes we support and the newest the validator knows;
2. the manifests agree with the code: every variable a pod of ours gets is a declared
   setting its command reads, the addresses the services bind are the ports the probes
   and the scrape annotations use, the grace period outlasts the shutdown timeout,
   selectors select one workload, every ConfigMap and Secret a pod needs is rendered or
   is one docs/kubernetes.md tells the operator to create, the pods meet the
   "restricted" Pod Security Standard with a read-only root file system, and no worker
   has more replicas than partitions.

``test_a_broken_copy_is_caught`` breaks a copy of the manifests in each way the checks
are for and expects the finding, so none of them passes for want of looking.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.cli import ROOT
from tests.kubernetes_checks import (
    Manifests,
    findings,
    object_id,
)
from tests.kustomize import KustomizeError, Obj, render, strategic_merge

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/production", "overlays/local")
#: kubectl (1.27 or newer: kustomize v5); .ci/run installs it where it is missing.
KUBECTL = shutil.which("kubectl")


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
    commands = {c.command for c in Manifests(rendered).containers}
    assert {"gateway", "stream worker", "sink worker", "topics apply"} <= commands
    kinds = {object_id(o) for o in rendered}
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
    containers = list(Manifests(production).containers)
    assert {c.spec["image"] for c in containers} == {"registry.example.com/codex-analytics:0.1.0"}
    for container in containers:
        assert container.env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        volume = next(v for v in container.pod["volumes"] if v["name"] == "kafka-credentials")
        assert volume["secret"]["optional"] is False  # the targeted patch reached every workload
    local = render(KUBERNETES / "overlays" / "local")
    assert {
        c.env["KAFKA_BOOTSTRAP_SERVERS"]
        for c in Manifests(local).containers
        if c.command != "receiver"
    } == {"kafka:9092"}
    assert {"Deployment/kafka", "Service/kafka", "Service/receiver"} <= {
        object_id(o) for o in local
    }


def test_the_setup_phase_holds_what_the_topics_job_needs() -> None:
    """docs/kubernetes.md applies ``-l codex-analytics/phase=setup`` first: the Job, its
    ServiceAccount, the ConfigMap it imports and the Namespace."""
    objects = render(KUBERNETES / "overlays" / "production")
    setup = {
        object_id(o)
        for o in objects
        if o["metadata"].get("labels", {}).get("codex-analytics/phase") == "setup"
    }
    job = next(c for c in Manifests(objects).containers if c.command == "topics apply")
    needs = {
        "Job/topics",
        "Namespace/codex-analytics",
        f"ServiceAccount/{job.pod['serviceAccountName']}",
    }
    needs |= {f"ConfigMap/{name}" for name in job.config_maps}
    assert setup == needs


def test_a_changed_setting_renames_its_config_map_and_the_references(tmp_path: Path) -> None:
    """The hash suffix is what rolls the pods when a setting changes."""

    def stream_maps(objects: list[Obj]) -> tuple[str, ...]:
        stream = next(c for c in Manifests(objects).containers if c.command == "stream worker")
        return stream.config_maps

    before = stream_maps(render(KUBERNETES / "base"))
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    _edit("ANALYTICS_STREAM_STORE=memory", "ANALYTICS_STREAM_STORE=rocksdb", "base/stream.env")(
        copy
    )
    objects = render(copy / "base")
    after = stream_maps(objects)
    assert before[0] == after[0]  # the shared map did not change
    assert before[1] != after[1]
    assert Manifests(objects).config_map(after[1]) is not None


def test_strategic_merge_merges_lists_by_their_keys() -> None:
    pod = {
        "containers": [
            {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "args": ["old"]},
        ],
        "tolerations": [{"key": "t1"}],
    }
    patch = {
        "containers": [
            {"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "X", "$patch": "delete"}]},
            {"name": "b", "args": ["new"]},
            {"name": "c"},
        ],
        "tolerations": [{"key": "t2"}],
        "hostname": None,
    }
    assert strategic_merge(pod, patch) == {
        "containers": [
            {"name": "a", "env": [{"name": "Y", "value": "3"}]},
            {"name": "b", "args": ["new"]},  # a list without a merge key is replaced
            {"name": "c"},
        ],
        "tolerations": [{"key": "t2"}],
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_renderer_renders_what_kubectl_kustomize_renders(kustomization: str) -> None:
    """Object for object, hash suffixes and list order included (kustomize prints the
    objects sorted by kind). Without kubectl this fails: install it (.ci/run does)."""
    assert KUBECTL is not None, "kubectl is missing: apt-get install kubectl (.ci/run does)"
    printed = subprocess.run(
        [KUBECTL, "kustomize", str(KUBERNETES / kustomization)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    real = [obj for obj in yaml.safe_load_all(printed) if obj]
    assert sorted(render(KUBERNETES / kustomization), key=object_id) == sorted(real, key=object_id)


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
    "a command that does not exist": (
        "base",
        _edit('args: ["stream", "worker"]', 'args: ["stream", "wroker"]', "base/stream.yaml"),
        "codex-analytics refuses the arguments ['stream', 'wroker']",
    ),
    "a misspelt setting": (
        "base",
        _edit("ANALYTICS_STREAM_STORE=", f"{MISSPELT}=", "base/stream.env"),
        f"{MISSPELT} is not a declared setting",
    ),
    "a value the setting refuses": (
        "overlays/production",
        _edit(
            "KAFKA_COMPRESSION=zstd", "KAFKA_COMPRESSION=snappy", "overlays/production/common.env"
        ),
        "Deployment/sink: KAFKA_COMPRESSION must be one of none, gzip, lz4, zstd",
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
        "0.0.0.0:9466: 9466 is no containerPort",
    ),
    "a loopback address": (
        "base",
        _edit('value: "0.0.0.0:9464"', 'value: "127.0.0.1:9464"', "base/sink.yaml"),
        "the kubelet probes the pod IP",
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
    "a policy opening a port nobody has": (
        "overlays/production",
        _edit("port: health", "port: metrics", "overlays/production/network-policy.yaml"),
        "NetworkPolicy/codex-analytics: port metrics is no port of its pods",
    ),
    "a missing ConfigMap": (
        "base",
        _edit("name: codex-analytics-sink\n", "name: codex-analytics-sinks\n", "base/sink.yaml"),
        "envFrom ConfigMap codex-analytics-sinks is not rendered",
    ),
    "an undocumented Secret": (
        "base",
        _edit("secretName: codex-analytics-tokens", "secretName: tokens", "base/sink.yaml"),
        "Secret tokens is neither rendered nor in kubernetes.md",
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
    "a hostPath volume": (
        "base",
        _edit(
            "emptyDir:\n            sizeLimit: 4Gi",
            "hostPath:\n            path: /var/lib/x",
            "base/stream.yaml",
        ),
        "Deployment/stream: volume state is not allowed",
    ),
    "Service links": (
        "overlays/local",
        _edit("      enableServiceLinks: false\n", "", "overlays/local/kafka.yaml"),
        "Deployment/kafka: enableServiceLinks is not false",
    ),
    "privilege escalation": (
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
        "Deployment/sink: cpu and memory requests and a memory limit",
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
