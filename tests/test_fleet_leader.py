"""Several gateways, one plan: one leader plans and actuates, a follower takes over when it dies."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.live_server import ADMIN_KEY
from tests.processes import GatewayProcess, simulated_replica_config

MODEL = "llama-3.1-8b-instruct"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}

pytestmark = pytest.mark.slow


def _gateway_config(tmp: Path, prefix: str) -> dict:
    replica = tmp / "replica.yaml"
    replica.write_text(yaml.safe_dump(simulated_replica_config("nvidia-l4", ledger=f"sqlite:///{tmp}/replica.db")))
    return {
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}}],
        "pools": [{
            "name": "l4", "model": MODEL, "chip": "nvidia-l4", "backend": "openai", "actuator": "local",
            "min": 1, "max": 2, "cold_start_s": 3,
            # a local OpenAI-compatible server: here a simulated replica served by maas itself
            "command": [sys.executable, "-m", "gateway.cli", "serve", "--config", str(replica), "--port", "{port}"],
        }],
        "fleet": {"interval_s": 0.5, "redis_prefix": prefix},
        "ledger": f"sqlite:///{tmp}/ledger.db",
        "limits": "redis://127.0.0.1:6379/0",
    }


def fleet(gateway: GatewayProcess) -> dict:
    return httpx.get(gateway.url + "/admin/fleet", headers=ADMIN, timeout=5).json()


def wait_for(what: str, condition, timeout: float = 60.0) -> float:
    """Poll another process's state until ``condition()`` holds; returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def gateways(tmp_path) -> Iterator[list[GatewayProcess]]:
    prefix = f"maas-test:{uuid.uuid4().hex[:8]}:fleet:"
    env = {"MAAS_ADMIN_KEY": ADMIN_KEY}
    procs = [GatewayProcess(_gateway_config(tmp_path, prefix), tmp_path, env=env) for _ in range(2)]
    yield procs
    for proc in procs:
        proc.stop()


def test_one_gateway_leads_the_other_follows_and_takes_over_when_the_leader_dies(gateways) -> None:
    first, second = gateways
    first.start()
    wait_for("the first gateway to lead and start a replica", lambda: fleet(first)["leader"]
             and fleet(first)["models"][0]["pools"][0]["replicas"]["active"] == 1)
    second.start()

    def follows() -> bool:
        view = fleet(second)
        replicas = httpx.get(second.url + "/admin/replicas", headers=ADMIN).json()["data"]
        return not view["leader"] and any(r["id"] == "l4-1" and r["state"] == "active" for r in replicas)

    wait_for("the second gateway to follow the plan", follows)
    assert sum(fleet(g)["leader"] for g in gateways) == 1

    key = httpx.post(first.url + "/admin/keys", headers=ADMIN, json={"tenant": "acme"}).json()["key"]
    client = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0)
    for _ in range(12):  # every request reaches the follower only
        answer = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert answer.headers["x-maas-replica"] == "l4-1"
    # the leader plans on the sum of every gateway's load
    wait_for("the leader to see the follower's load", lambda: fleet(first)["models"][0]["load"]["rate_rps"] > 0)

    first.kill()
    took = wait_for("the follower to take the lease", lambda: fleet(second)["leader"], timeout=30)
    assert took < 10
    # the replica the dead leader started still serves, now through the new leader
    answer = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "still there?"}], max_tokens=4)
    assert answer.headers["x-maas-replica"] == "l4-1"
    assert fleet(second)["models"][0]["pools"][0]["replicas"]["active"] >= 1
