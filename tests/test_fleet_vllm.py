"""The fleet with real vLLM engines on this CPU: a second engine starts when the load needs it and
serves; when the load falls it drains (every in-flight request completes) and stops; nothing fails."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import openai
import pytest

from backends.bundled_model import prepare_bundled_model
from gateway.config import parse_config
from tests.live_server import ADMIN_KEY, LiveServer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MODEL = "smollm2-135m-instruct"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    prepare_bundled_model()
    config = parse_config({
        "models": [{"name": MODEL, "price": {"input_per_mtok": "0.05", "output_per_mtok": "0.10"}, "max_model_len": 1024}],
        "pools": [{
            "name": "cpu", "model": MODEL, "chip": "cpu-avx2", "backend": "vllm", "actuator": "local",
            "min": 1, "max": 2, "cold_start_s": 40,
            "replica": {"engine": {"max_model_len": 1024, "max_num_seqs": 16, "kv_cache_gib": 1}},
        }],
        # a short hysteresis and short load windows, so that the test sees a day's swings in a minute
        "fleet": {"interval_s": 1.0, "scale_in_after_s": 20, "min_up_s": 0, "headroom": 0.3,
                  "load": {"bucket_s": 1, "rate_window_s": 6, "peak_span_s": 3, "peak_window_s": 6, "window_s": 20,
                           "mix_min_requests": 5}},
        "routing": {"policy": "cost_latency", "slo": {"ttft_ms": 1500, "tpot_ms": 150}},
        "ledger": f"sqlite:///{tmp_path_factory.mktemp('fleet-vllm')}/ledger.db",
        "limits": "memory",
    }, env={"MAAS_ADMIN_KEY": ADMIN_KEY})
    live = LiveServer(config).start(timeout=600)
    yield live
    live.stop()


def pool(server: LiveServer) -> dict:
    view = httpx.get(server.url + "/admin/fleet", headers=ADMIN, timeout=10).json()
    return view["models"][0]["pools"][0]


async def until(server: LiveServer, what: str, condition, timeout: float) -> float:
    """Poll the running gateway's fleet view until ``condition(pool)`` holds; returns the seconds taken."""
    started = time.monotonic()
    while not condition(view := await asyncio.to_thread(pool, server)):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {view}")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def test_a_second_engine_starts_under_load_and_drains_without_failing_a_request(server: LiveServer) -> None:
    await until(server, "the first engine", lambda p: p["replicas"]["active"] == 1, 300)
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=server.create_key("load"), max_retries=0,
                                timeout=300)
    outcomes: Counter[str] = Counter()
    served_by: Counter[str] = Counter()
    clients = [10]  # how many of the workers send requests: the load
    stop = asyncio.Event()
    load_changed = asyncio.Event()

    async def worker(index: int) -> None:
        while not stop.is_set():
            if index >= clients[0]:
                await load_changed.wait()  # idle until the load changes or the test ends
                continue
            try:
                answer = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": f"Write a short poem about chip {index}."}],
                    max_tokens=48,
                )
                served_by[answer.headers["x-maas-replica"]] += 1
                outcomes["ok"] += 1
            except openai.APIError as exc:
                outcomes[f"failed: {exc}"] += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(10)]
    try:
        took = await until(server, "a second engine serving", lambda p: p["replicas"]["active"] == 2, 420)
        await until(server, "the second engine to take requests", lambda p: len(served_by) == 2, 120)
        # the load falls to one client: the planner scales in after its hysteresis; the engine drains first
        clients[0] = 1
        await until(server, "the second engine to drain and stop", lambda p: p["replicas"] ==
                    {"starting": 0, "active": 1, "standby": 0, "draining": 0}, 180)
    finally:
        stop.set()
        load_changed.set()
        await asyncio.gather(*tasks)
        await client.close()
    assert [k for k in outcomes if k != "ok"] == [], outcomes
    assert outcomes["ok"] > 10 and len(served_by) == 2
    view = pool(server)
    print(f"\nscale-out seen after {took:.0f}s of load; measured cold start {view['measured_cold_start_s']}s; "
          f"requests {outcomes['ok']}, by replica {dict(served_by)}")
    assert view["measured_cold_start_s"] > 1
