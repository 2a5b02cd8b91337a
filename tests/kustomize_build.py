"""A small kustomize for the tests: builds deploy/kubernetes as ``kubectl kustomize`` would.

No kustomize binary is guaranteed on CI, so the manifest tests build the kustomization with
this loader. It implements exactly the features deploy/kubernetes uses -- ``resources`` (files,
or folders with their own kustomization), ``namespace``, ``configMapGenerator`` (``files``,
``literals``) and ``images`` -- and refuses any other field, so that a kustomization feature
added later cannot be silently ignored by the tests. Generated ConfigMaps keep their plain
names (kustomize adds a content hash and rewrites the references; the tests compare names
without it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}
#: kinds that live outside any namespace (the namespace transformer leaves them alone)
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
                  "StorageClass", "PriorityClass"}


class KustomizeError(Exception):
    """The kustomization uses something this loader does not build, or names a missing file."""


@dataclass
class Build:
    """The objects a kustomization produces, with the file each came from."""

    root: Path
    objects: list[dict[str, Any]] = field(default_factory=list)
    origin: dict[int, Path] = field(default_factory=dict)  # id(object) -> source file
    #: every file the kustomization names: resources and generator sources
    listed: set[Path] = field(default_factory=set)
    kustomizations: set[Path] = field(default_factory=set)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def source(self, obj: dict[str, Any]) -> Path:
        return self.origin[id(obj)]

    def describe(self, obj: dict[str, Any]) -> str:
        return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} ({self.source(obj).relative_to(self.root)})"


def build(folder: Path) -> Build:
    """Build the kustomization in ``folder``."""
    result = Build(root=folder)
    _build_into(folder, result)
    return result


def _build_into(folder: Path, result: Build) -> None:
    path = folder / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{folder}: no kustomization.yaml")
    result.kustomizations.add(path)
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this loader does not build: {sorted(unknown)}")
    start = len(result.objects)
    for entry in spec.get("resources", []):
        target = (folder / entry).resolve()
        if target.is_dir():
            _build_into(target, result)
            continue
        if not target.is_file():
            raise KustomizeError(f"{path}: resource {entry} does not exist")
        result.listed.add(target)
        for obj in yaml.safe_load_all(target.read_text()):
            if obj is not None:
                _add(result, obj, target)
    for generator in spec.get("configMapGenerator", []):
        unknown = set(generator) - {"name", "files", "literals"}
        if unknown:
            raise KustomizeError(f"{path}: configMapGenerator fields this loader does not build: {sorted(unknown)}")
        data: dict[str, str] = {}
        for entry in generator.get("files", []):
            key, _, name = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
            source = (folder / name).resolve()
            if not source.is_file():
                raise KustomizeError(f"{path}: configMapGenerator {generator['name']}: {name} does not exist")
            result.listed.add(source)
            data[key] = source.read_text()
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        _add(result, obj, path)
    for obj in result.objects[start:]:
        if spec.get("namespace") and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = spec["namespace"]
        for image in spec.get("images", []):
            _set_image(obj, image)


def _add(result: Build, obj: dict[str, Any], source: Path) -> None:
    result.objects.append(obj)
    result.origin[id(obj)] = source


def _set_image(obj: dict[str, Any], rule: dict[str, str]) -> None:
    pod = pod_spec(obj)
    if pod is None:
        return
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        reference, _, digest = container["image"].partition("@")
        name, tag = reference.rsplit(":", 1) if ":" in reference.rsplit("/", 1)[-1] else (reference, "")
        if name != rule["name"]:
            continue
        name, tag = rule.get("newName", name), rule.get("newTag", tag)
        digest = "" if "newTag" in rule else digest
        container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None."""
    if obj.get("kind") == "Pod":
        return obj["spec"]
    template = obj.get("spec", {}).get("template")
    return template.get("spec") if isinstance(template, dict) else None


def container_env(obj: dict[str, Any], container: str) -> dict[str, str]:
    """The plain ``value`` variables of one container of a workload (``valueFrom`` ones left out)."""
    pod = pod_spec(obj) or {}
    (found,) = [c for c in [*pod.get("initContainers", []), *pod.get("containers", [])] if c["name"] == container]
    return {v["name"]: v["value"] for v in found.get("env", []) if "value" in v}
