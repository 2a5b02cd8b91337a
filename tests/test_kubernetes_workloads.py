"""deploy/kubernetes: the gateway pods are hardened and configured as the gateway expects; the
replica pods ask for their vendor's accelerator and register themselves as valid replicas.

The ConfigMap's config is parsed by the gateway's own loader, and each replica pod's
registration is built by the registrar's own code from the pod's environment and validated by
the gateway's replica schema: a manifest that the gateway would refuse fails here.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from backends.chips import chip_profile
from gateway.config import ReplicaConfig, parse_config
from tests.kustomize_build import Build, build, container_env, pod_spec

DEPLOY = (Path(__file__).parent.parent / "deploy" / "kubernetes").resolve()
#: what each chip kind's device plugin calls its accelerator (sources: the replica files' headers)
DEVICE_RESOURCES = {
    "nvidia-l4": "nvidia.com/gpu",
    "amd-mi300x": "amd.com/gpu",
    "ascend-910b": "huawei.com/Ascend910",
    "kunlun-p800": "kunlunxin.com/xpu",
}
TEST_ADMIN_KEY = "k8s-manifest-test-admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def built() -> Build:
    return build(DEPLOY)


@pytest.fixture(scope="module")
def registrar() -> ModuleType:
    spec = importlib.util.spec_from_file_location("maas_registrar", DEPLOY / "replicas" / "registrar.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def gateway_container(built: Build) -> dict[str, Any]:
    (container,) = pod_spec(built.get("Deployment", "maas-gateway"))["containers"]
    return container


def config_text(built: Build) -> str:
    return built.get("ConfigMap", "maas-gateway-config")["data"]["config.yaml"]


def replica_pools(built: Build) -> list[dict[str, Any]]:
    return [d for d in built.of_kind("Deployment") if d["spec"]["template"]["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "replica"]


def test_gateway_pods_run_unprivileged_with_a_read_only_root_filesystem(built: Build) -> None:
    pod = pod_spec(built.get("Deployment", "maas-gateway"))
    container = gateway_container(built)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # what the process writes goes to emptyDirs, and nowhere else
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert writable == {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
    assert {"/tmp", "/var/lib/maas"} <= writable
    for key in ("cpu", "memory"):
        assert key in container["resources"]["requests"] and key in container["resources"]["limits"]


def test_gateway_probes_readiness_and_liveness_on_the_gateways_own_endpoints(built: Build) -> None:
    container = gateway_container(built)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_gateway_reads_the_config_map_through_config_and_secrets_from_the_secret(built: Build) -> None:
    container = gateway_container(built)
    args = container["args"]
    path = Path(args[args.index("--config") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in pod_spec(built.get("Deployment", "maas-gateway"))["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "maas-gateway-config"
    assert {"key": "config.yaml", "path": path.name} in volume["configMap"]["items"]
    secrets = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in container["env"] if "valueFrom" in v}
    assert secrets == {"MAAS_ADMIN_KEY": "admin-key", "MAAS_METRICS_TOKEN": "metrics-token",
                       "PGPASSWORD": "postgres-password"}
    assert "admin_key" not in yaml.safe_load(config_text(built)), "secrets come from the environment only"


def test_secret_in_git_holds_placeholders_only(built: Build) -> None:
    (secret,) = built.of_kind("Secret")
    assert "data" not in secret
    assert set(secret["stringData"].values()) == {"REPLACE-ME"}


def test_config_map_config_parses_with_the_gateways_loader_for_several_gateways(built: Build) -> None:
    config = parse_config(yaml.safe_load(config_text(built)), env={"MAAS_ADMIN_KEY": TEST_ADMIN_KEY})
    assert config.admin_key == TEST_ADMIN_KEY
    assert config.server.host == "0.0.0.0" and config.server.allow_anonymous is False
    assert config.server.port == gateway_container(built)["ports"][0]["containerPort"]
    # state shared by every gateway pod lives in real servers, none in the pods
    assert config.limits.store.startswith(("redis://", "rediss://"))
    assert config.ledger.startswith("postgresql://")
    assert "@" in config.ledger and ":" not in config.ledger.split("@")[0].removeprefix("postgresql://"), (
        "no password in the URL: PGPASSWORD from the Secret"
    )
    assert config.replicas == [], "replicas register themselves"


def test_gateway_tier_runs_several_pods_with_a_disruption_budget_and_a_cpu_autoscaler(built: Build) -> None:
    (hpa,) = [h for h in built.of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "maas-gateway"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    (pdb,) = built.of_kind("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    headless = built.get("Service", "maas-gateway-pods")
    # the registrars must reach gateway pods that are not ready yet (not ready until registered)
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True


def test_replica_pools_ask_for_their_vendors_accelerator_on_matching_nodes(built: Build) -> None:
    pools = {d["spec"]["template"]["metadata"]["labels"]["maas-gateway/pool"]: d for d in replica_pools(built)}
    assert set(pools) == set(DEVICE_RESOURCES)
    for pool, deployment in pools.items():
        pod = pod_spec(deployment)
        engine = next(c for c in pod["containers"] if c["name"] == "engine")
        resource = DEVICE_RESOURCES[pool]
        # extended resources: limits and requests must be equal (Kubernetes refuses otherwise)
        assert engine["resources"]["limits"][resource] == engine["resources"]["requests"][resource] == 1
        assert pod["nodeSelector"], pool
        assert any(t["key"] == resource for t in pod.get("tolerations", []))
        assert "--served-model-name=llama-3.1-8b-instruct" in [a.split("#")[0].strip() for a in engine["args"]]


def test_each_replica_pod_registers_a_replica_the_gateway_accepts(built: Build, registrar: ModuleType) -> None:
    config = parse_config(yaml.safe_load(config_text(built)), env={"MAAS_ADMIN_KEY": TEST_ADMIN_KEY})
    for deployment in replica_pools(built):
        pool = deployment["spec"]["template"]["metadata"]["labels"]["maas-gateway/pool"]
        env = container_env(deployment, "registrar")
        pod = {"POD_NAME": f"{deployment['metadata']['name']}-7d9f8b6c5-x2x4q", "POD_IP": "10.42.3.17"}
        expanded = {k: re.sub(r"\$\((\w+)\)", lambda m, pod=pod: pod[m.group(1)], v) for k, v in env.items()}
        settings = registrar.Settings.from_env({**expanded, "MAAS_ADMIN_KEY": TEST_ADMIN_KEY})
        spec = ReplicaConfig.model_validate(settings.replica)
        assert spec.id == pod["POD_NAME"] and spec.url == "http://10.42.3.17:8000/v1"
        assert spec.backend == "openai" and spec.chip == pool
        assert config.model_by_name(spec.model) is not None, spec.model
        # the chip catalog knows the chip (KeyError otherwise), and the price is the catalog's
        assert spec.cost_per_hour == chip_profile(spec.chip).cost_per_hour
        assert settings.gateway_dns == "maas-gateway-pods:8000"


def test_engine_stops_only_after_the_registrar_has_deregistered_the_pod(built: Build) -> None:
    for deployment in replica_pools(built):
        pod = pod_spec(deployment)
        engine = next(c for c in pod["containers"] if c["name"] == "engine")
        sidecar = next(c for c in pod["containers"] if c["name"] == "registrar")
        assert engine["lifecycle"]["preStop"]["exec"]["command"][-1] == "wait-deregistered"
        assert "lifecycle" not in sidecar, "the registrar must get SIGTERM at once to start draining"
        shared = {"MAAS_DONE_FILE", "MAAS_DRAIN_TIMEOUT_S"}
        engine_env, sidecar_env = container_env(deployment, "engine"), container_env(deployment, "registrar")
        assert {k: engine_env[k] for k in shared} == {k: sidecar_env[k] for k in shared}
        state = Path(sidecar_env["MAAS_DONE_FILE"]).parent
        mounts = {c["name"]: {m["mountPath"]: m["name"] for m in c["volumeMounts"]} for c in (engine, sidecar)}
        assert mounts["engine"][str(state)] == mounts["registrar"][str(state)]
        # drain + the engine's own shutdown fit in the grace period
        assert pod["terminationGracePeriodSeconds"] >= float(sidecar_env["MAAS_DRAIN_TIMEOUT_S"]) + 30


def test_prometheus_scrapes_every_gateway_pod_with_the_metrics_token(built: Build) -> None:
    scrape = yaml.safe_load(built.get("ConfigMap", "maas-prometheus-scrape")["data"]["maas-gateway.yml"])
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"].endswith("/metrics-token")  # the Secret's key, mounted as a file
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"  # one target per pod: each gateway process counts its own requests
    assert discovery["namespaces"]["names"] == [built.get("Deployment", "maas-gateway")["metadata"]["namespace"]]
    labels = built.get("Deployment", "maas-gateway")["spec"]["template"]["metadata"]["labels"]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    name_and_component = ("__meta_kubernetes_pod_label_app_kubernetes_io_name",
                          "__meta_kubernetes_pod_label_app_kubernetes_io_component")
    assert keep[name_and_component] == f"{labels['app.kubernetes.io/name']};{labels['app.kubernetes.io/component']}"
    assert keep[("__meta_kubernetes_pod_container_port_name",)] in {p["name"] for p in gateway_container(built)["ports"]}
