"""The embedded default end to end: the real vLLM engine (CPU) behind the gateway, via the openai SDK."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import openai
import pytest

from backends.bundled_model import prepare_bundled_model
from tests.live_server import ADMIN_KEY, LiveServer

pytestmark = pytest.mark.vllm

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def model_dir():
    return prepare_bundled_model()


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)


def engine(server: LiveServer) -> dict:
    data = httpx.get(server.url + "/admin/replicas", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    return data[0]["engine"]


def test_default_model_answers_with_exact_engine_usage(client: openai.OpenAI, model_dir) -> None:
    from transformers import AutoTokenizer

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    raw = client.chat.completions.with_raw_response.create(model="default", messages=messages, max_tokens=30, temperature=0)
    reply = raw.parse()
    assert raw.headers["x-maas-chip"] == "cpu-avx2"
    assert "x-maas-simulated" not in raw.headers
    assert "Paris" in reply.choices[0].message.content
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    templated = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert reply.usage.prompt_tokens == len(tokenizer(templated, add_special_tokens=False)["input_ids"])
    generated = tokenizer(reply.choices[0].message.content, add_special_tokens=False)["input_ids"]
    # detokenize/retokenize can merge at most a token or two; the engine's count is exact
    assert abs(reply.usage.completion_tokens - len(generated)) <= 2
    assert reply.usage.completion_tokens <= 30


def test_stream_with_usage_and_length_cut(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a long story."}], max_tokens=12,
            stream=True, stream_options={"include_usage": True}, temperature=0,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


async def test_sixteen_concurrent_requests_run_in_one_batch(server: LiveServer) -> None:
    aclient = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=300)
    jobs = [
        asyncio.create_task(
            aclient.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Write about the number {i}."}],
                max_tokens=48, extra_body={"ignore_eos": True},
            )
        )
        for i in range(16)
    ]
    peak = 0
    while not all(j.done() for j in jobs):
        running = await asyncio.to_thread(lambda: engine(server)["running"] or 0)
        peak = max(peak, running)
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*jobs)
    assert all(r.usage.completion_tokens == 48 for r in results)
    assert peak >= 8, f"engine ran at most {peak} requests at once"
    await aclient.close()


def test_client_disconnect_aborts_the_request_in_the_engine(server: LiveServer) -> None:
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Go on forever."}], "max_tokens": 1000,
              "ignore_eos": True, "stream": True},
        timeout=60,
    ) as response:
        lines = response.iter_lines()
        for _ in range(6):
            next(lines)
        assert engine(server)["running"] == 1
    deadline = time.monotonic() + 10
    while engine(server)["running"] != 0:
        assert time.monotonic() < deadline, "the engine kept generating for a client that left"
        time.sleep(0.1)


def test_dead_engine_answers_503_at_once_then_recovers(server: LiveServer, client: openai.OpenAI) -> None:
    backend = server.gateway.registry.get("cpu-0").backend
    os.kill(backend.engine_pid(), signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        for _ in range(20):  # the first request after the kill may race the death notice
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            time.sleep(0.1)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"]
    assert time.monotonic() - started < 15  # refused, not hung
    deadline = time.monotonic() + 300
    while True:
        try:
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503
            assert time.monotonic() < deadline, "the engine did not come back"
            time.sleep(2)
    assert reply.usage.completion_tokens > 0
