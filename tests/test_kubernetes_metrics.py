"""Every metric deploy/kubernetes names is one a real gateway exports, with the labels it asks for.

A real gateway is started from the ConfigMap's own config (with its ledger and limit store
swapped for a temporary SQLite file and memory: the config's hosts are placeholders) and its
/metrics is scraped. Names come from the export itself, not from a list kept here.

Until the fleet planner's metrics land (maas_fleet_desired_replicas{model,pool,chip}, which
KEDA scales the replica pools to), these tests fail: they say so by naming what is missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import parse_config
from tests.kustomize_build import Build, build
from tests.live_server import ADMIN_KEY, LiveServer

DEPLOY = (Path(__file__).parent.parent / "deploy" / "kubernetes").resolve()
METRIC = re.compile(r"\b(maas_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(maas_[a-z0-9_]+)\{([^}]*)\}")
#: families the gateway exports may take these suffixes in samples and queries
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",),
            "summary": ("_sum", "_count", "_created"), "unknown": ("",)}


@pytest.fixture(scope="module")
def built() -> Build:
    return build(DEPLOY)


@pytest.fixture(scope="module")
def server(built: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = yaml.safe_load(built.get("ConfigMap", "maas-gateway-config")["data"]["config.yaml"])
    data["ledger"] = f"sqlite:///{tmp_path_factory.mktemp('k8s-metrics')}/ledger.db"
    data["limits"]["store"] = "memory"
    live = LiveServer(parse_config(data, env={"MAAS_ADMIN_KEY": ADMIN_KEY})).start()
    yield live
    live.stop()


def scrape(server: LiveServer) -> tuple[set[str], list[tuple[str, dict[str, str]]]]:
    """The names /metrics exports (with their suffixes) and its samples."""
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.text))
    names = {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, ("",))}
    samples = [(s.name, s.labels) for f in families for s in f.samples]
    return names | {name for name, _ in samples}, samples


def manifest_text(built: Build) -> str:
    """Everything the manifests say, ConfigMap payloads included (the gateway's own config aside)."""
    objects = [o for o in built.objects if o["metadata"]["name"] not in {"maas-gateway-config", "maas-registrar"}]
    return yaml.safe_dump_all(objects)


def test_manifests_name_metrics_at_all(built: Build) -> None:
    names = set(METRIC.findall(manifest_text(built)))
    assert "maas_fleet_desired_replicas" in names  # the KEDA triggers


def test_every_metric_a_manifest_names_is_exported_by_a_running_gateway(built: Build, server: LiveServer) -> None:
    exported, _ = scrape(server)
    named = set(METRIC.findall(manifest_text(built)))
    missing = sorted(named - exported)
    assert missing == [], f"manifests name metrics the gateway does not export: {missing}"


def test_each_keda_query_selects_series_the_gateway_exports(built: Build, server: LiveServer) -> None:
    wanted = [
        (name, dict(re.findall(r'(\w+)="([^"]*)"', matchers)))
        for scaled in built.of_kind("ScaledObject")
        for trigger in scaled["spec"]["triggers"]
        for name, matchers in SELECTOR.findall(trigger["metadata"]["query"])
    ]
    assert len(wanted) == 4
    # the planner may publish its first plan a moment after start: wait for it, within a bound
    deadline = time.monotonic() + 30
    while True:
        _, samples = scrape(server)
        unmatched = [(n, m) for n, m in wanted if not any(s == n and m.items() <= labels.items() for s, labels in samples)]
        if not unmatched or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert unmatched == [], f"KEDA queries that select no series on a running gateway: {unmatched}"
