"""A small kustomize: renders deploy/kubernetes/ without the kustomize binary.

CI has PyPI and Debian's packages, and neither ships kustomize, so the manifest tests
render the base and the overlays with this module. It implements the part of
kustomize that our kustomizations use, with kustomize's semantics:

* ``resources`` (YAML files of objects, or directories holding a kustomization);
* ``configMapGenerator`` (``envs`` files and ``literals``; ``behavior`` ``create``,
  ``merge`` or ``replace``; ``options.labels``), with the content-hash suffix on the
  names and every reference from a pod spec renamed to match;
* ``patches`` (strategic merge: maps merged, lists of containers, env, volumes,
  mounts and ports merged by their key, other lists replaced, ``null`` and
  ``$patch: delete`` remove), by the patch's own kind and name or by a ``target``;
* ``namespace``, ``labels`` (``pairs``, ``includeSelectors``, ``includeTemplates``) and
  ``images`` (``newName``, ``newTag``, ``digest``).

Anything else in a kustomization is an error rather than silently ignored, and so is
a patch that matches no object: a field this renderer does not know must not pass the
tests while ``kubectl apply -k`` would do something else. Where kubectl is installed,
a test compares the output with ``kubectl kustomize`` object for object (identical
with kustomize v5.5, hash suffixes included).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "configMapGenerator",
    "patches",
}

#: Strategic-merge keys of the lists our patches touch (the Kubernetes API's
#: ``x-kubernetes-patch-merge-key``); any other list is replaced whole.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}

#: Kinds without a namespace, among those a kustomization of ours may hold.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}

#: Kinds whose pod template sits at spec.template.
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(ValueError):
    """A kustomization this renderer cannot render as kustomize would."""


@dataclass
class _Build:
    objects: list[Obj] = field(default_factory=list)
    #: Generated ConfigMaps by their name before the hash suffix.
    generated: dict[str, Obj] = field(default_factory=dict)


def render(directory: Path) -> list[Obj]:
    """The objects ``kubectl kustomize directory`` prints, as dicts, in order."""
    build = _build(directory)
    renames = {name: _hashed_name(obj) for name, obj in build.generated.items()}
    for obj in build.generated.values():
        obj["metadata"]["name"] = renames[obj["metadata"]["name"]]
    for obj in build.objects:
        pod = pod_spec(obj)
        if pod is not None:
            _rename_config_maps(pod, renames)
    return build.objects


def load_objects(path: Path) -> list[Obj]:
    """The objects of a YAML file, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_spec(obj: Obj) -> Obj | None:
    """A workload's pod spec (spec.template.spec), or None for other kinds."""
    if obj.get("kind") not in WORKLOADS:
        return None
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def _build(directory: Path) -> _Build:
    kustomization = _read_kustomization(directory)
    build = _Build()
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            child = _build(path)
            build.objects.extend(child.objects)
            build.generated.update(child.generated)
        else:
            build.objects.extend(load_objects(path))
    for generator in kustomization.get("configMapGenerator", []):
        _generate_config_map(directory, generator, build)
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, build.objects)
    if "namespace" in kustomization:
        for obj in build.objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        _add_labels(label, build.objects)
    for image in kustomization.get("images", []):
        _set_image(image, build.objects)
    return build


def _read_kustomization(directory: Path) -> Obj:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    kustomization: Obj = yaml.safe_load(path.read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return kustomization


def _generate_config_map(directory: Path, generator: Obj, build: _Build) -> None:
    unknown = set(generator) - {"name", "envs", "literals", "behavior", "options"}
    if unknown:
        raise KustomizeError(f"configMapGenerator {generator.get('name')}: {sorted(unknown)}")
    name = generator["name"]
    data: dict[str, str] = {}
    for env_file in generator.get("envs", []):
        data.update(_read_env_file(directory / env_file))
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    labels = generator.get("options", {}).get("labels", {})
    behavior = generator.get("behavior", "create")
    existing = build.generated.get(name)
    if behavior == "create":
        if existing is not None:
            raise KustomizeError(f"configMapGenerator {name}: already generated (use merge)")
        obj: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        build.objects.append(obj)
        build.generated[name] = obj
    elif existing is None:
        raise KustomizeError(f"configMapGenerator {name}: {behavior} of a map no base generates")
    else:
        obj = existing
        if behavior == "replace":
            obj["data"] = {}
        elif behavior != "merge":
            raise KustomizeError(f"configMapGenerator {name}: unknown behavior {behavior!r}")
    obj["data"] = {**obj.get("data", {}), **data}
    if labels:
        obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **labels}


def _read_env_file(path: Path) -> dict[str, str]:
    """kustomize's env files: ``KEY=VALUE`` lines, the value as written; ``#`` lines
    and blank lines skipped."""
    data: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise KustomizeError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        data[key] = value
    return data


def _hashed_name(obj: Obj) -> str:
    """kustomize's suffix: the SHA-256 of the map's JSON (``kind``, ``data`` and a
    ``name`` that kustomize v5 looks up at a path it never finds, so always empty), its
    first 10 hex digits with the ones that could spell words mapped to consonants."""
    encoded = json.dumps(
        {"data": obj.get("data", {}), "kind": obj["kind"], "name": ""},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    suffix = digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))
    return f"{obj['metadata']['name']}-{suffix}"


def _rename_config_maps(pod: Obj, renames: dict[str, str]) -> None:
    def rename(ref: Obj | None) -> None:
        if ref is not None and ref.get("name") in renames:
            ref["name"] = renames[ref["name"]]

    for container in (*pod.get("containers", []), *pod.get("initContainers", [])):
        for source in container.get("envFrom", []):
            rename(source.get("configMapRef"))
        for var in container.get("env", []):
            rename(var.get("valueFrom", {}).get("configMapKeyRef"))
    for volume in pod.get("volumes", []):
        rename(volume.get("configMap"))
        for source in volume.get("projected", {}).get("sources", []):
            rename(source.get("configMap"))


def _apply_patch(directory: Path, entry: Obj, objects: list[Obj]) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise KustomizeError(f"patch {entry}: fields this renderer does not implement")
    where = entry.get("path", "inline patch")
    documents = load_objects(directory / entry["path"]) if "path" in entry else []
    if "patch" in entry:
        documents = [doc for doc in yaml.safe_load_all(entry["patch"]) if doc]
    for patch in documents:
        target = entry.get("target")
        matched = [obj for obj in objects if _selected(obj, patch, target)]
        if not matched:
            raise KustomizeError(f"{where}: the patch matches no object ({target or _id(patch)})")
        if target is not None and patch["kind"] != target.get("kind", patch["kind"]):
            raise KustomizeError(f"{where}: a {patch['kind']} patch for {target}")
        body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
        if target is not None:
            # Kustomize ignores the patch's own name when a target selects the objects.
            body["metadata"] = {k: v for k, v in patch["metadata"].items() if k != "name"}
        for obj in matched:
            merged = strategic_merge(obj, body)
            obj.clear()
            obj.update(merged)


def _selected(obj: Obj, patch: Obj, target: Obj | None) -> bool:
    if target is None:
        return _id(obj) == _id(patch)
    unknown = set(target) - {"kind", "name", "labelSelector"}
    if unknown:
        raise KustomizeError(f"patch target {target}: {sorted(unknown)} not implemented")
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and obj["metadata"]["name"] != target["name"]:
        return False
    labels = obj["metadata"].get("labels", {})
    for term in filter(None, target.get("labelSelector", "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _id(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(original: Any, patch: Any, key: str = "") -> Any:
    """``patch`` merged into ``original`` as a strategic merge patch (a new value)."""
    if isinstance(patch, dict) and isinstance(original, dict):
        merged = copy.deepcopy(original)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = strategic_merge(original.get(name), value, name)
        return merged
    if isinstance(patch, list) and isinstance(original, list) and key in MERGE_KEYS:
        return _merge_list(original, patch, MERGE_KEYS[key])
    return copy.deepcopy(patch)


def _merge_list(original: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    """Elements with the same key merge; as kustomize (kyaml) orders them, the patch's
    elements come first, then the original's others in their order."""
    by_key = {item.get(merge_key): item for item in original}
    merged = []
    for item in patch:
        directive = item.get("$patch")
        item = {k: v for k, v in item.items() if k != "$patch"}
        old = by_key.pop(item.get(merge_key), None)
        if directive == "delete":
            continue
        if directive not in (None, "merge"):
            raise KustomizeError(f"$patch: {directive} not implemented")
        merged.append(copy.deepcopy(item) if old is None else strategic_merge(old, item))
    merged.extend(copy.deepcopy(item) for item in by_key.values())
    return merged


def _add_labels(entry: Obj, objects: Iterable[Obj]) -> None:
    unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown or entry.get("includeSelectors"):
        # Selectors are immutable on a live Deployment: ours are written out in full.
        raise KustomizeError(f"labels {entry}: only pairs and includeTemplates implemented")
    pairs = entry["pairs"]
    for obj in objects:
        places = [obj["metadata"]]
        if obj["kind"] in WORKLOADS and entry.get("includeTemplates"):
            places.append(obj["spec"]["template"]["metadata"])
        for place in places:
            place["labels"] = {**place.get("labels", {}), **pairs}


def _set_image(entry: Obj, objects: Iterable[Obj]) -> None:
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise KustomizeError(f"images {entry}: {sorted(unknown)} not implemented")
    for obj in objects:
        pod = pod_spec(obj) or {}
        for container in (*pod.get("containers", []), *pod.get("initContainers", [])):
            name, reference = split_image(container["image"])
            if name != entry["name"]:
                continue
            if "digest" in entry:
                reference = "@" + entry["digest"]
            elif "newTag" in entry:
                reference = ":" + entry["newTag"]
            container["image"] = entry.get("newName", name) + reference


def split_image(image: str) -> tuple[str, str]:
    """``registry:5000/name:tag`` -> (``registry:5000/name``, ``:tag``); a digest
    (``@sha256:...``) or no tag gives the rest as the second part."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""
