"""A revoked key stops working on every gateway process within a second (two real `maas serve` processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from billing.database import open_database
from tests.live_server import ADMIN_KEY, sim_config
from tests.processes import GatewayProcess
from tests.test_billing_support import pg_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

MODEL = "llama-3.1-8b-instruct"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
WITHIN_S = 1.0


@pytest.fixture(params=["sqlite", "postgresql"])
def gateways(request, tmp_path: Path) -> Iterator[tuple[str, list[GatewayProcess]]]:
    """Two gateway processes sharing one ledger (SQLite file or PostgreSQL schema)."""
    if request.param == "sqlite":
        ledger = f"sqlite:///{tmp_path}/shared.db"
    else:
        ledger = request.getfixturevalue("pg_url")
    procs = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        config = sim_config(workdir).model_dump(mode="json")
        del config["server"]["port"]
        config["ledger"] = ledger
        procs.append(GatewayProcess(config, workdir, env={"MAAS_ADMIN_KEY": ADMIN_KEY}))
    try:
        for proc in procs:
            proc.start()
        yield ledger, procs
    finally:
        for proc in procs:
            proc.stop()


def _create_key(ledger: str) -> tuple[str, str]:
    async def create() -> tuple[str, str]:
        db = await open_database(ledger)
        try:
            key, secret = await db.keys.create("revocation")
            return key.id, secret
        finally:
            await db.close()

    return asyncio.run(create())


def _revoke_from_another_process(ledger: str, key_id: str) -> float:
    """What ``maas keys revoke`` does (a process with the database only); returns when it committed."""

    async def revoke() -> float:
        db = await open_database(ledger)
        try:
            assert await db.keys.revoke(key_id)
            return time.monotonic()
        finally:
            await db.close()

    return asyncio.run(revoke())


def _refused_after(client: httpx.Client, url: str, secret: str, since: float, deadline: float) -> float:
    """Seconds from ``since`` until ``url`` refuses ``secret`` (polling requests, each a real call)."""
    while time.monotonic() < deadline:
        headers = {"authorization": f"Bearer {secret}"}
        status = client.post(url + "/v1/chat/completions", json=BODY, headers=headers).status_code
        if status == 403:
            return time.monotonic() - since
        assert status == 200, status
    raise AssertionError(f"{url} still serves a revoked key after {deadline - since:.1f}s")


def test_key_revoked_from_the_cli_stops_on_every_process_within_a_second(gateways) -> None:
    ledger, procs = gateways
    key_id, secret = _create_key(ledger)
    with httpx.Client(timeout=10) as client:
        for proc in procs:  # cached as valid on both processes first
            assert client.post(proc.url + "/v1/chat/completions", json=BODY,
                               headers={"authorization": f"Bearer {secret}"}).status_code == 200
        revoked_at = _revoke_from_another_process(ledger, key_id)
        latencies = [_refused_after(client, p.url, secret, revoked_at, revoked_at + 15) for p in procs]
    print(f"\nrevocation latency ({ledger.split(':')[0]}): " + ", ".join(f"{s * 1000:.0f} ms" for s in latencies))
    assert max(latencies) < WITHIN_S


def test_key_revoked_through_one_gateways_admin_api_stops_on_the_other(gateways) -> None:
    ledger, (first, second) = gateways
    key_id, secret = _create_key(ledger)
    with httpx.Client(timeout=10) as client:
        assert client.post(second.url + "/v1/chat/completions", json=BODY,
                           headers={"authorization": f"Bearer {secret}"}).status_code == 200
        response = client.delete(first.url + f"/admin/keys/{key_id}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert response.status_code == 200
        revoked_at = time.monotonic()
        latency = _refused_after(client, second.url, secret, revoked_at, revoked_at + 15)
    print(f"\nrevocation latency via the admin API ({ledger.split(':')[0]}): {latency * 1000:.0f} ms")
    assert latency < WITHIN_S
