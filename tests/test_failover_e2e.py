"""A replica server dies under load: the gateway routes around it and readmits it later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from backends.base import GenerationRequest, Sampling
from backends.chips import chip_profile
from backends.simulated import SimulatedBackend
from tests.live_server import ADMIN_KEY, LiveServer, sim_config
from tests.processes import GatewayProcess, simulated_replica_config

MODEL = "llama-3.1-8b-instruct"
CHIPS = ("nvidia-l4", "ascend-910b", "kunlun-p800")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory) -> Iterator[list[GatewayProcess]]:
    work = tmp_path_factory.mktemp("replicas")
    # the victim (index 1) runs at half its chip's real speed so that its streams are still
    # going when it is killed; the others at a tenth
    procs = [
        GatewayProcess(
            simulated_replica_config(chip, time_scale=0.5 if i == 1 else 0.1, ledger=f"sqlite:///{work}/{chip}.db"), work
        )
        for i, chip in enumerate(CHIPS)
    ]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="module")
def front(upstreams: list[GatewayProcess], tmp_path_factory) -> Iterator[LiveServer]:
    config = sim_config(
        tmp_path_factory.mktemp("front"),
        models=[{"name": MODEL, "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}}],
        replicas=[
            {"id": f"r{i}", "model": MODEL, "backend": "openai", "chip": p.config["replicas"][0]["chip"],
             "url": p.url + "/v1", "connect_timeout_s": 1.0}
            for i, p in enumerate(upstreams)
        ],
        routing={"policy": "least_outstanding", "max_attempts": 3, "health_interval_s": 0.3,
                 "breaker_failures": 1, "breaker_cooldown_s": 0.5},
    )
    server = LiveServer(config).start()
    yield server
    server.stop()


def _replica_view(front: LiveServer, replica_id: str) -> dict:
    data = httpx.get(front.url + "/admin/replicas", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    return next(r for r in data if r["id"] == replica_id)


async def test_killing_a_replica_under_load_loses_no_non_streaming_request(front: LiveServer, upstreams) -> None:
    client = openai.AsyncOpenAI(base_url=front.url + "/v1", api_key=front.create_key("load"), max_retries=0, timeout=60)
    victim_index = 1
    victim = upstreams[victim_index]

    # seeds whose answer is long (>= 150 tokens: > 1.5 s on the victim): those streams are still
    # running when it dies. The double is deterministic, so an in-process copy tells the lengths.
    double = SimulatedBackend(chip_profile(CHIPS[victim_index]), MODEL, time_scale=1e-6)
    await double.start()
    lengths = [
        (await double.generate(GenerationRequest(
            request_id=str(seed), model=MODEL, kind="chat", sampling=Sampling(seed=seed),
            messages=[{"role": "user", "content": "stream"}],
        ))).usage.completion_tokens
        for seed in range(40)
    ]
    await double.close()
    long_seeds = [seed for seed, length in enumerate(lengths) if length >= 150]
    assert len(long_seeds) >= 6

    async def streamed(i: int, chips: list[str] | None = None) -> tuple[str, str]:
        """Returns (replica, outcome); outcome is 'ok' or 'error-event'."""
        response = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "stream"}], seed=long_seeds[i], stream=True,
            extra_body={"routing": {"chips": chips}} if chips else None,
        )
        replica = response.headers["x-maas-replica"]
        stream = response.parse()
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    started[i].set()
        except openai.APIError:
            return replica, "error-event"
        return replica, "ok"

    async def plain(i: int) -> str:
        completion = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": f"plain {i}"}], max_tokens=40
        )
        parsed = completion.parse()
        assert 0 < parsed.usage.completion_tokens <= 40
        assert parsed.choices[0].finish_reason in ("stop", "length")
        return completion.headers["x-maas-replica"]

    started = [asyncio.Event() for _ in range(6)]
    victim_chip = CHIPS[victim_index]
    streams = [asyncio.create_task(streamed(i, [victim_chip] if i < 2 else None)) for i in range(6)]
    plains = [asyncio.create_task(plain(i)) for i in range(30)]
    # the two streams pinned to the victim have delivered text; plain requests are in flight
    await asyncio.wait_for(asyncio.gather(started[0].wait(), started[1].wait()), 30)
    victim.kill()
    plains += [asyncio.create_task(plain(100 + i)) for i in range(30)]

    served_by = await asyncio.gather(*plains)  # raises if any non-streaming request failed
    assert len(served_by) == 60
    stream_results = await asyncio.gather(*streams)
    for replica, outcome in stream_results:
        # a started stream is never retried elsewhere: on the dead replica it ends with an error event
        assert outcome == ("error-event" if replica == f"r{victim_index}" else "ok")
    assert sum(replica == f"r{victim_index}" for replica, _ in stream_results) >= 2

    # ejected: the health monitor keeps its breaker open while it is down
    await asyncio.sleep(1.0)
    assert _replica_view(front, f"r{victim_index}")["routable"] is False
    after = await asyncio.gather(*(plain(200 + i) for i in range(10)))
    assert f"r{victim_index}" not in after

    # the card comes back: readmitted after a successful probe, and serves again
    victim.start()
    deadline = time.monotonic() + 15
    while not _replica_view(front, f"r{victim_index}")["routable"]:
        assert time.monotonic() < deadline, "replica was not readmitted"
        await asyncio.sleep(0.2)
    again = await asyncio.gather(*(plain(300 + i) for i in range(12)))
    assert f"r{victim_index}" in again
    await client.close()
