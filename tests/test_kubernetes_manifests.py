"""deploy/kubernetes: valid for Kubernetes and KEDA, complete, and consistent with itself.

Offline: no cluster is needed. The documented check, ``kubectl apply --dry-run=client -k
deploy/kubernetes``, asks an API server for its schemas; these tests validate every object
against the Kubernetes schemas of a pinned version (kubernetes-validate, strict: unknown fields
are errors), the ScaledObjects against KEDA's (tests/schemas/), and check what neither does:
that every file is in the kustomization and every reference between objects resolves.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.kustomize_build import Build, build, container_env, pod_spec

DEPLOY = (Path(__file__).parent.parent / "deploy" / "kubernetes").resolve()
#: the schemas to validate against: inside KEDA 2.20's tested window (Kubernetes 1.33 - 1.35)
KUBERNETES_VERSION = "1.34.0"
KEDA_SCHEMA = Path(__file__).parent / "schemas" / "keda_scaledobject_v1alpha1.json"


@pytest.fixture(scope="module")
def built() -> Build:
    return build(DEPLOY)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = pod_spec(obj) or {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj["spec"]["template"]["metadata"]["labels"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest_file_and_nothing_missing(built: Build) -> None:
    on_disk = {
        p.resolve() for p in DEPLOY.rglob("*")
        if p.is_file() and p.suffix in {".yaml", ".yml", ".json", ".py"} and "__pycache__" not in p.parts
    } - built.kustomizations
    assert sorted(map(str, on_disk - built.listed)) == [], "files on disk that the kustomization leaves out"
    assert built.listed <= on_disk
    assert len(built.objects) >= 20


def test_every_object_validates_against_the_kubernetes_schemas(built: Build) -> None:
    outside, errors = set(), []
    for obj in built.objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            outside.add(f"{obj['apiVersion']} {obj['kind']}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{built.describe(obj)}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert errors == []
    # KEDA's CRD is the one kind Kubernetes' own schemas do not have: the next test covers it
    assert outside == {"keda.sh/v1alpha1 ScaledObject"}


def test_scaled_objects_validate_against_kedas_schema(built: Build) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(KEDA_SCHEMA.read_text()))
    scaled = built.of_kind("ScaledObject")
    assert len(scaled) == 4
    for obj in scaled:
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert errors == [], built.describe(obj)
        spec = obj["spec"]
        assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), built.describe(obj)
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior is not None:  # KEDA embeds Kubernetes' HPA behaviour: validate it with Kubernetes' schema
            hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 1, "behavior": behavior}}
            kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)


def test_each_replica_pool_is_scaled_by_keda_to_the_planners_desired_replicas(built: Build) -> None:
    pools = [d for d in built.of_kind("Deployment") if pod_labels(d).get("app.kubernetes.io/component") == "replica"]
    assert len(pools) == 4
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in built.of_kind("ScaledObject")]
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in built.of_kind("HorizontalPodAutoscaler")}
    for deployment in pools:
        name, pool = deployment["metadata"]["name"], pod_labels(deployment)["maas-gateway/pool"]
        assert targets.count(name) == 1, f"{name}: one ScaledObject each"
        assert name not in hpa_targets, f"{name}: an HPA and KEDA would fight over the count"
        assert "replicas" not in deployment["spec"], f"{name}: a fixed count would be reset by every apply"
        scaled = next(s for s in built.of_kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name)
        (trigger,) = scaled["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "prometheus" and trigger.get("metricType", "AverageValue") == "AverageValue"
        # AverageValue with threshold 1: the HPA wants ceil(value / 1) pods, the planner's number
        assert float(meta["threshold"]) == 1.0 and float(meta["activationThreshold"]) == 0.0
        assert meta["serverAddress"].startswith(("http://", "https://"))
        model = container_env(deployment, "registrar")["MAAS_REPLICA_MODEL"]
        assert re.fullmatch(
            rf'max\(maas_fleet_desired_replicas\{{model="{re.escape(model)}",pool="{re.escape(pool)}"\}}\)', meta["query"]
        ), meta["query"]


def test_references_between_objects_resolve(built: Build) -> None:
    for obj in built.objects:
        pod = pod_spec(obj)
        if pod is None:
            continue
        where = built.describe(obj)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                config_map = built.get("ConfigMap", volume["configMap"]["name"])
                assert config_map is not None, f"{where}: no ConfigMap {volume['configMap']['name']}"
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in config_map["data"], f"{where}: ConfigMap has no key {item['key']}"
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert built.get("PersistentVolumeClaim", claim) is not None, f"{where}: no claim {claim}"
        for container in containers(obj):
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= {v["name"] for v in pod.get("volumes", [])}, f"{where}: mounts a volume it lacks"
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    secret = built.get("Secret", ref["name"])
                    assert secret is not None, f"{where}: no Secret {ref['name']}"
                    assert ref["key"] in secret.get("stringData", secret.get("data", {})), f"{where}: {ref}"
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for obj in built.of_kind(kind):
            assert built.get("Deployment", obj["spec"]["scaleTargetRef"]["name"]) is not None, built.describe(obj)


def test_selectors_select_the_pods_they_are_meant_for(built: Build) -> None:
    deployments = built.of_kind("Deployment")
    for deployment in deployments:
        assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment)), built.describe(deployment)
    gateway = built.get("Deployment", "maas-gateway")
    for obj in [*built.of_kind("Service"), *built.of_kind("PodDisruptionBudget")]:
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert [d["metadata"]["name"] for d in deployments if matches(selector, pod_labels(d))] == ["maas-gateway"], (
            built.describe(obj)
        )
    (policy,) = built.of_kind("NetworkPolicy")
    guarded = [d for d in deployments if matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels(d))]
    assert len(guarded) == 4 and gateway not in guarded
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    assert matches(allowed["podSelector"]["matchLabels"], pod_labels(gateway))


def test_env_references_name_variables_defined_before_them(built: Build) -> None:
    # Kubernetes expands $(VAR) only for variables defined earlier in the same container;
    # anything else stays in the value literally
    for obj in built.of_kind("Deployment"):
        for container in containers(obj):
            defined: set[str] = set()
            for var in container.get("env", []):
                for name in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                    assert name in defined, f"{built.describe(obj)} {container['name']}: $({name}) in {var['name']}"
                defined.add(var["name"])


def test_probes_and_services_name_ports_the_containers_declare(built: Build) -> None:
    for obj in built.of_kind("Deployment"):
        for container in containers(obj):
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                assert port is None or port in ports, f"{built.describe(obj)} {container['name']} {probe}"
    gateway_ports = {p["name"] for c in containers(built.get("Deployment", "maas-gateway")) for p in c.get("ports", [])}
    for service in built.of_kind("Service"):
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= gateway_ports


def test_loader_builds_what_kubectl_kustomize_builds(built: Build) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here: the loader's build cannot be compared with kustomize's")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120, check=True)
    theirs = [o for o in yaml.safe_load_all(out.stdout) if o]
    ours = {o["metadata"]["name"] for o in built.of_kind("ConfigMap")}
    generated = {
        name: name.rsplit("-", 1)[0] for name in (o["metadata"]["name"] for o in theirs if o["kind"] == "ConfigMap")
        if name not in ours and name.rsplit("-", 1)[0] in ours
    }
    # kustomize names generated ConfigMaps <name>-<hash> and rewrites the references: undo that
    text = yaml.safe_dump_all(theirs)
    for hashed, plain in generated.items():
        text = text.replace(hashed, plain)

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    assert sorted(yaml.safe_load_all(text), key=key) == sorted(built.objects, key=key)
