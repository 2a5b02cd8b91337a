"""The operator surface: keys, tenants, the replica registry, scorecard, usage reports, CLI."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import openai
import pytest
import yaml

from tests.live_server import ADMIN_KEY, LiveServer, sim_config

MODEL = "llama-3.1-8b-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(sim_config(tmp_path_factory.mktemp("admin"))).start()
    yield live
    live.stop()


@pytest.fixture
def admin(server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as c:
        yield c


def chat(server: LiveServer, key: str, n: int = 1, **kw) -> list:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    return [
        client.chat.completions.with_raw_response.create(
            model=kw.get("model", MODEL), messages=[{"role": "user", "content": f"q{i}"}], max_tokens=5,
            extra_body=kw.get("extra_body"),
        )
        for i in range(n)
    ]


def test_created_key_secret_is_shown_once_and_works(server: LiveServer, admin: httpx.Client) -> None:
    created = admin.post("/admin/keys", json={"tenant": "keyco", "name": "ci", "rpm": 100}).json()
    assert created["key"].startswith("sk-maas-")
    assert created["rpm"] == 100
    listed = admin.get("/admin/keys", params={"tenant": "keyco"}).json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert all("key" not in k and created["key"] not in str(k) for k in listed)
    assert listed[0]["prefix"] and created["key"].startswith(listed[0]["prefix"])
    assert chat(server, created["key"])[0].status_code == 200
    assert admin.delete(f"/admin/keys/{created['id']}").status_code == 200
    assert admin.delete("/admin/keys/nope").status_code == 404


def test_key_limited_to_unknown_model_is_refused(admin: httpx.Client) -> None:
    response = admin.post("/admin/keys", json={"tenant": "x", "models": ["no-such-model"]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_tenant_budget_is_set_and_read_back(admin: httpx.Client) -> None:
    saved = admin.put("/admin/tenants/budgetco", json={"budget_usd": "12.50", "budget_period": "day", "rpm": 30})
    assert saved.status_code == 200
    tenant = admin.get("/admin/tenants/budgetco").json()
    assert Decimal(tenant["budget_usd"]) == Decimal("12.50")
    assert tenant["budget_period"] == "day"
    assert tenant["rpm"] == 30


def test_replica_register_drain_undrain_remove(server: LiveServer, admin: httpx.Client) -> None:
    key = server.create_key("registry")
    spec = {"id": "mi300x-new", "model": MODEL, "backend": "simulated", "chip": "amd-mi300x", "time_scale": 0.02}
    registered = admin.post("/admin/replicas", json=spec)
    assert registered.status_code == 201, registered.text
    assert registered.json()["simulated"] is True
    assert admin.post("/admin/replicas", json=spec).status_code == 409
    assert admin.post("/admin/replicas", json={**spec, "id": "x", "model": "nope"}).status_code == 404
    assert admin.post("/admin/replicas", json={**spec, "id": "y", "chip": "abacus"}).status_code == 400

    pinned = {"routing": {"chips": ["amd-mi300x"]}}
    assert chat(server, key, extra_body=pinned)[0].headers["x-maas-replica"] == "mi300x-new"

    drained = admin.post("/admin/replicas/mi300x-new/drain").json()
    assert drained["draining"] is True and drained["routable"] is False
    served = {r.headers["x-maas-replica"] for r in chat(server, key, n=8)}
    assert "mi300x-new" not in served
    with pytest.raises(openai.APIStatusError) as info:
        chat(server, key, extra_body=pinned)
    assert info.value.status_code == 503

    assert admin.post("/admin/replicas/mi300x-new/undrain").json()["routable"] is True
    removed = admin.delete("/admin/replicas/mi300x-new", params={"timeout_s": 5})
    assert removed.json() == {"id": "mi300x-new", "removed": True, "in_flight_cut": 0}
    ids = {r["id"] for r in admin.get("/admin/replicas").json()["data"]}
    assert "mi300x-new" not in ids
    assert admin.post("/admin/replicas/mi300x-new/drain").status_code == 404


def test_replica_listing_shows_live_stats_and_labels_simulated(server: LiveServer, admin: httpx.Client) -> None:
    chat(server, server.create_key("stats"), n=4)
    data = admin.get("/admin/replicas").json()["data"]
    h100 = next(r for r in data if r["id"] == "h100-0")
    assert h100["simulated"] is True
    assert h100["chip"] == "nvidia-h100"
    assert h100["backend"] == "SimulatedBackend"
    assert {"running", "waiting", "kv_cache_usage"} <= set(h100["engine"])
    assert "telemetry" in h100 and "breaker" in h100


def test_scorecard_scores_chips_by_delivered_traffic(server: LiveServer, admin: httpx.Client) -> None:
    chat(server, server.create_key("score"), n=8)
    rows = {r["chip"]: r for r in admin.get("/admin/scorecard").json()["data"]}
    assert {"nvidia-h100", "nvidia-l4"} <= set(rows)
    for row in rows.values():
        assert row["requests"] >= 1
        assert 0 <= row["success_rate"] <= 1
        assert {"output_tok_s", "ttft_p50_ms", "ttft_p95_ms", "usd_per_mtok_output"} <= set(row)


def test_own_usage_shows_only_the_callers_tenant(server: LiveServer) -> None:
    mine, theirs = server.create_key("usage-a"), server.create_key("usage-b")
    chat(server, mine, n=3)
    chat(server, theirs, n=2)
    own = httpx.get(server.url + "/v1/usage", headers={"authorization": f"Bearer {mine}"}).json()
    assert own["group_by"] == ["model", "day"]
    assert sum(r["requests"] for r in own["data"]) == 3
    assert {r["model"] for r in own["data"]} == {MODEL}
    assert httpx.get(server.url + "/v1/usage").status_code == 401


def test_admin_usage_groups_filters_and_exports_csv(server: LiveServer, admin: httpx.Client) -> None:
    key = server.create_key("report")
    responses = chat(server, key, n=6)
    by_chip = admin.get("/admin/usage", params={"tenant": "report", "group_by": "chip"}).json()["data"]
    served = {r.headers["x-maas-chip"] for r in responses}
    assert {r["chip"] for r in by_chip} == served
    assert sum(r["requests"] for r in by_chip) == 6
    for row in by_chip:
        assert {"price_usd", "compute_cost_usd", "margin_usd"} <= set(row)
    total_cost = sum(float(r.headers["x-maas-cost-usd"]) for r in responses)
    assert abs(sum(float(r["price_usd"]) for r in by_chip) - total_cost) < 1e-12
    exported = admin.get("/admin/usage", params={"tenant": "report", "group_by": "model,chip", "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sum(int(r["requests"]) for r in rows) == 6
    assert admin.get("/admin/usage", params={"group_by": "colour"}).status_code == 400
    assert admin.get("/admin/usage", params={"frm": "x"}).status_code == 400


def _maas(*args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gateway.cli", *args]
    env = {**os.environ, "MAAS_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_cli_keys_usage_invoice_replicas_scorecard(server: LiveServer, tmp_path) -> None:
    config_path = tmp_path / "cli.yaml"
    config = sim_config(tmp_path)
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    created = _maas("keys", "--config", str(config_path), "create", "--tenant", "cli-co", "--models", "default")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("sk-maas-")
    listed = _maas("keys", "--config", str(config_path), "list", "--tenant", "cli-co")
    assert "cli-co" in listed.stdout and secret not in listed.stdout
    key_id = next(line.split()[1] for line in listed.stdout.splitlines() if "cli-co" in line)

    month = time.strftime("%Y-%m", time.gmtime())
    usage = _maas("usage", "--config", str(config_path), "--tenant", "cli-co")
    assert usage.returncode == 0, usage.stderr
    invoice = _maas("invoice", "--config", str(config_path), "--tenant", "cli-co", "--month", month)
    assert invoice.returncode == 0, invoice.stderr and "total" in invoice.stdout
    revoked = _maas("keys", "--config", str(config_path), "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr + revoked.stdout
    assert _maas("keys", "--config", str(config_path), "revoke", "no-such-key").returncode == 1

    replicas = _maas("replicas", "--url", server.url)
    assert replicas.returncode == 0, replicas.stderr
    assert "h100-0" in replicas.stdout and "nvidia-l4" in replicas.stdout
    assert _maas("scorecard", "--url", server.url).returncode == 0


def test_cli_reports_a_bad_config_naming_the_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": [{"name": "m"}], "replicas": [{"id": "r", "model": "m", "backend": "openai", "chip": "x"}]}))
    result = _maas("serve", "--config", str(bad))
    assert result.returncode == 2
    assert "replicas.0" in result.stderr and "url" in result.stderr
    assert "Traceback" not in result.stderr
