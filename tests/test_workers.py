"""``maas serve --workers 2`` with Redis limits and one SQLite ledger behaves as one gateway."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import ADMIN_KEY
from tests.processes import GatewayProcess

pytestmark = pytest.mark.slow

MODEL = "llama-3.1-8b-instruct"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
RPM = 10
EXTRA = 5
BURST = 60


def _config(workdir: Path) -> dict:
    return {
        "server": {"allow_anonymous": False, "log_level": "warning"},
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.20", "output_per_mtok": "0.60"}}],
        "replicas": [
            {"id": f"{chip}-0", "model": MODEL, "backend": "simulated", "chip": chip, "time_scale": 0.01}
            for chip in ("nvidia-h100", "nvidia-l4", "ascend-910b")
        ],
        "routing": {"policy": "round_robin"},
        "ledger": f"sqlite:///{workdir}/shared-ledger.db",
        # every worker shares these counters; keys are fresh per run, so their counters are too
        "limits": "redis://127.0.0.1:6379/0",
    }


def _create_key(gateway: GatewayProcess, tenant: str, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", "--config", str(gateway.config_path), "create", "--tenant", tenant,
         *extra],
        cwd=gateway.workdir, capture_output=True, text=True, timeout=60, check=True,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("workers")
    proc = GatewayProcess(_config(workdir), workdir, env={"MAAS_ADMIN_KEY": ADMIN_KEY})
    proc.tenant = f"workers-{int(time.time() * 1000)}"  # type: ignore[attr-defined]
    proc.keys = {  # type: ignore[attr-defined]
        "open": _create_key(proc, proc.tenant + "-open"),  # type: ignore[attr-defined]
        "limited": _create_key(proc, proc.tenant, "--rpm", str(RPM)),  # type: ignore[attr-defined]
    }
    proc.start(extra_args=("--workers", "2"), timeout=120)
    yield proc
    proc.stop()


def _workers(gateway: GatewayProcess) -> list[psutil.Process]:
    assert gateway.proc is not None
    return [p for p in psutil.Process(gateway.proc.pid).children(recursive=True) if "python" in p.name().lower()]


def _chat(client: httpx.AsyncClient, url: str, key: str) -> "asyncio.Future[httpx.Response]":
    return client.post(
        url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        headers={"authorization": f"Bearer {key}", "connection": "close"},
    )


async def _burst(url: str, key: str, n: int, concurrency: int) -> list[httpx.Response]:
    # no keep-alive: every request is a new connection, for the kernel to hand to either worker
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return list(await asyncio.gather(*(_chat(client, url, key) for _ in range(n))))


def _requests_seen(text: str) -> float:
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "maas_requests_total" and s.labels.get("status_class") == "2xx"
    )


def test_two_worker_processes_serve_one_port(gateway: GatewayProcess) -> None:
    workers = _workers(gateway)
    assert len(workers) >= 2, [p.cmdline() for p in workers]


def test_both_workers_answer_requests(gateway: GatewayProcess) -> None:
    async def scrapes() -> set[float]:
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=10)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            pages = await asyncio.gather(*(client.get(gateway.url + "/metrics") for _ in range(40)))
        return {_requests_seen(p.text) for p in pages}

    # The workers share one listening socket and the kernel decides who accepts; a short
    # burst can land on one worker alone, so send bursts until the split shows (or give up).
    total, seen = 0, set()
    for _ in range(6):
        responses = asyncio.run(_burst(gateway.url, gateway.keys["open"], BURST, 20))  # type: ignore[attr-defined]
        assert [r.status_code for r in responses] == [200] * BURST
        total += BURST
        # each worker has its own registry: a scrape shows the count of whichever worker answered it
        seen = asyncio.run(scrapes())
        if any(0 < v < total for v in seen):
            break
    assert any(0 < v < total for v in seen), f"one worker served all {total} requests: scrapes saw {seen}"
    assert max(seen) <= total


def test_rpm_limit_holds_across_workers(gateway: GatewayProcess) -> None:
    # fixed one-minute windows: do not let the burst straddle a minute boundary
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    responses = asyncio.run(_burst(gateway.url, gateway.keys["limited"], RPM + EXTRA, RPM + EXTRA))  # type: ignore[attr-defined]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * RPM + [429] * EXTRA
    for response in responses:
        assert response.headers["x-ratelimit-limit-requests"] == str(RPM)
        if response.status_code == 429:
            assert response.headers["x-ratelimit-remaining-requests"] == "0"
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.headers["x-ratelimit-reset-requests"]
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200)
    assert remaining == list(range(RPM))  # each admitted request saw a distinct slot, across both processes


def test_shared_ledger_holds_one_row_per_admitted_request(gateway: GatewayProcess) -> None:
    key = gateway.keys["limited"]  # type: ignore[attr-defined]
    body = httpx.get(gateway.url + "/v1/usage", headers={"authorization": f"Bearer {key}"}, timeout=10).json()
    assert sum(row["requests"] for row in body["data"]) == RPM


def test_workers_get_the_admin_key_without_it_being_in_their_environment(gateway: GatewayProcess) -> None:
    workers = psutil.Process(gateway.proc.pid).children(recursive=True)  # type: ignore[union-attr]
    assert len([w for w in workers if "gateway" in " ".join(w.cmdline()) or w.name().startswith("python")]) >= 2
    for worker in workers:
        assert "MAAS_ADMIN_KEY" not in worker.environ()
    # and the admin API still works in every worker
    for _ in range(6):
        assert httpx.get(gateway.url + "/admin/replicas", headers=ADMIN).status_code == 200
