"""The fleet through the real gateway: plans published, pools scaled, external replicas joining."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.live_server import ADMIN_KEY, LiveServer, sim_config

MODEL = "llama-3.1-8b-instruct"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PRICE = {"input_per_mtok": "0.20", "output_per_mtok": "0.60"}


def pool(name: str, chip: str, **kw) -> dict:
    return {"name": name, "model": MODEL, "chip": chip, "backend": "simulated", "actuator": "simulated",
            "cold_start_s": 5.0, "replica": {"time_scale": 0.02}, **kw}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    config = sim_config(
        tmp_path_factory.mktemp("fleet"),
        models=[{"name": MODEL, "aliases": ["default"], "price": PRICE}],
        replicas=[],
        pools=[
            pool("l4", "nvidia-l4", min=1, max=3),
            pool("mi300x", "amd-mi300x", min=0, max=2),
            {"name": "k8s-h100", "model": MODEL, "chip": "nvidia-h100", "backend": "openai", "actuator": "external",
             "min": 1, "max": 2},
        ],
        # planned by hand in these tests (a tick on start, then when the test says)
        fleet={"interval_s": 3600, "scale_in_after_s": 0, "min_up_s": 0},
        routing={"policy": "cost_latency"},
    )
    live = LiveServer(config).start()
    live.run(live.gateway.fleet.tick)
    live.run(live.gateway.lifecycle.settled)
    yield live
    live.stop()


def fleet(server: LiveServer) -> dict:
    return httpx.get(server.url + "/admin/fleet", headers=ADMIN).json()


def pools(server: LiveServer) -> dict[str, dict]:
    (model,) = fleet(server)["models"]
    return {p["pool"]: p for p in model["pools"]}


def test_the_plan_keeps_each_pools_minimum_and_publishes_desired_replicas(server: LiveServer) -> None:
    view = pools(server)
    assert view["l4"]["desired"] >= 1 and view["l4"]["replicas"]["active"] >= 1
    assert view["mi300x"]["desired"] == 0 and view["mi300x"]["replicas"] == {"starting": 0, "active": 0, "standby": 0,
                                                                              "draining": 0}
    assert view["k8s-h100"]["desired"] >= 1  # nothing runs there until something registers
    assert view["l4"]["measured_cold_start_s"] is not None
    metrics = httpx.get(server.url + "/metrics").text
    assert 'maas_fleet_desired_replicas{chip="nvidia-l4",model="llama-3.1-8b-instruct",pool="l4"}' in metrics
    assert 'maas_fleet_running_replicas{chip="nvidia-l4",model="llama-3.1-8b-instruct",pool="l4",state="active"}' in metrics
    reasons = fleet(server)["models"][0]["decisions"][-1]["reasons"]
    assert any("nvidia-l4" in r for r in reasons)


async def test_cheap_requests_on_a_light_load_never_wake_the_expensive_chip(server: LiveServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=server.create_key("cheap"), max_retries=0)
    chips = []
    for _ in range(4):
        answers = await asyncio.gather(*(
            client.chat.completions.with_raw_response.create(
                model="default:cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=8)
            for _ in range(5)
        ))
        chips += [a.headers["x-maas-chip"] for a in answers]
        server.run(server.gateway.fleet.tick)
    await client.close()
    assert set(chips) == {"nvidia-l4"}
    assert pools(server)["mi300x"]["replicas"]["active"] == 0
    assert not [e for e in fleet(server)["events"] if e["pool"] == "mi300x"]


def test_an_external_replica_joins_its_pool_and_a_surplus_one_is_drained_before_removal(server: LiveServer) -> None:
    for name in ("pod-a", "pod-b"):
        created = httpx.post(server.url + "/admin/replicas", headers=ADMIN, json={
            "id": name, "model": MODEL, "backend": "openai", "chip": "nvidia-h100", "pool": "k8s-h100",
            "url": "http://127.0.0.1:9/v1", "connect_timeout_s": 0.2,
        })
        assert created.status_code == 201, created.text
        assert created.json()["state"] == "active"
    assert pools(server)["k8s-h100"]["replicas"]["active"] == 2
    server.run(server.gateway.fleet.tick)  # no load on it: the plan wants its minimum, one
    states = {r["id"]: r["state"] for r in httpx.get(server.url + "/admin/replicas", headers=ADMIN).json()["data"]}
    assert sorted([states["pod-a"], states["pod-b"]]) == ["active", "draining"]
    drained = next(name for name in ("pod-a", "pod-b") if states[name] == "draining")
    # the outside system removes it (a pod's preStop): drained already, nothing in flight is cut
    removed = httpx.delete(f"{server.url}/admin/replicas/{drained}", headers=ADMIN, params={"timeout_s": 5})
    assert removed.json() == {"id": drained, "removed": True, "in_flight_cut": 0}
    assert pools(server)["k8s-h100"]["replicas"] == {"starting": 0, "active": 1, "standby": 0, "draining": 0}


def test_registering_into_a_pool_that_does_not_exist_is_a_400(server: LiveServer) -> None:
    answer = httpx.post(server.url + "/admin/replicas", headers=ADMIN, json={
        "id": "stray", "model": MODEL, "backend": "openai", "chip": "nvidia-h100", "pool": "nope",
        "url": "http://127.0.0.1:9/v1",
    })
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "pool"


def test_usage_reports_what_the_replicas_cost_with_idle_capacity_as_its_own_line(server: LiveServer) -> None:
    server.run(server.gateway.lifecycle.account)
    report = httpx.get(server.url + "/admin/usage", headers=ADMIN, params={"group_by": "chip"}).json()
    lines = {line["chip"]: line for line in report["capacity"]}
    l4 = lines["nvidia-l4"]
    assert l4["paid_replica_hours"] > 0
    capacity, attributed = float(l4["capacity_cost_usd"]), float(l4["attributed_compute_usd"])
    assert capacity > 0 and float(l4["idle_capacity_usd"]) == pytest.approx(max(0.0, capacity - attributed), abs=1e-9)
    assert float(l4["margin_usd"]) == pytest.approx(float(l4["revenue_usd"]) - capacity, abs=1e-9)
    # the same paid time is counted in the metrics
    metrics = httpx.get(server.url + "/metrics").text
    assert 'maas_replica_cost_usd_total{chip="nvidia-l4",model="llama-3.1-8b-instruct",pool="l4"}' in metrics


def test_maas_fleet_shows_pools_desired_and_running_and_the_planners_reasons(server, capsys, monkeypatch) -> None:
    from gateway.cli import main

    monkeypatch.setenv("MAAS_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["fleet", "--url", server.url]) == 0
    printed = capsys.readouterr().out
    for expected in ("l4", "mi300x", "k8s-h100", "nvidia-l4", "external", "leader", "/h now"):
        assert expected in printed
    assert "cover" in printed  # the planner's reasons, in words
