"""Replicas of ``ray`` pools are actors placed by chip, and requests reach them through the gateway."""

from __future__ import annotations

import time

import httpx
import openai

from tests.ray.gateways import active, events, pool_members, ray_pool
from tests.ray_cluster import ChipCluster, wait_for


def test_replicas_land_only_on_nodes_with_their_chip(cluster: ChipCluster, gateway_with) -> None:
    server = gateway_with([
        ray_pool("l4", "nvidia-l4", min=2, max=2),
        ray_pool("ascend", "ascend-910b", min=2, max=2),
        ray_pool("cpu", "cpu-avx2"),
        ray_pool("kunlun", "kunlun-p800"),  # no node offers it
    ])
    for pool, count in (("l4", 2), ("ascend", 2), ("cpu", 1)):
        wait_for(lambda p=pool, n=count: len(active(server, p)) == n, timeout=180, what=f"{count} active {pool} replicas")
    placed = {pool: pool_members(server, pool) for pool in ("l4", "ascend", "cpu")}
    assert {cluster.chip_of(m["node"]) for m in placed["l4"]} == {"nvidia-l4"}
    assert len({m["node"] for m in placed["l4"]}) == 2  # one L4 per node: spread over both
    assert {cluster.chip_of(m["node"]) for m in placed["ascend"]} == {"ascend-910b"}
    assert {cluster.chip_of(m["node"]) for m in placed["cpu"]} == {"cpu-avx2"}

    failed = wait_for(lambda: [e for e in events(server, "kunlun") if e["event"] == "start_failed"], timeout=30,
                      what="the kunlun start to fail")
    assert "no node of the Ray cluster offers chip:kunlun-p800: 1" in failed[0]["reason"]
    assert not active(server, "kunlun")


def test_request_flows_through_the_gateway_to_the_actor(cluster: ChipCluster, gateway_with) -> None:
    server = gateway_with([ray_pool("l4", "nvidia-l4", time_scale=1.0)])
    (replica,) = wait_for(lambda: active(server, "l4"), timeout=120, what="an active l4 replica")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=60)

    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "Say hello."}], max_tokens=12,
    )
    reply = raw.parse()
    assert raw.headers["x-maas-replica"] == replica["id"]
    assert raw.headers["x-maas-chip"] == "nvidia-l4"
    assert raw.headers["x-maas-simulated"] == "true"
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 12

    # streamed token by token: chunks arrive as the (simulated L4's real-time) decode produces them
    arrivals: list[float] = []
    usage = None
    for chunk in client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Count slowly."}], max_tokens=16, stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 16
    assert len(arrivals) >= 8
    assert arrivals[-1] - arrivals[0] > 0.1  # spread over the decode, not delivered at the end


def test_the_replica_server_answers_only_its_gateway(cluster: ChipCluster, gateway_with) -> None:
    server = gateway_with([ray_pool("cpu", "cpu-avx2")])
    (replica,) = wait_for(lambda: active(server, "cpu"), timeout=120, what="an active cpu replica")
    ready = next(e for e in events(server, "cpu") if e["event"] == "ready")
    print(f"\nmeasured: simulated replica on Ray serving after {ready['reason']} (0.05 s of it simulated engine load)")
    for headers in ({}, {"authorization": "Bearer sk-guess"}):
        answer = httpx.post(replica["url"] + "/chat/completions", headers=headers, timeout=10,
                            json={"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"
