"""The OpenAI surface, driven by the official SDK against a live gateway (simulated pool)."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

MODEL = "llama-3.1-8b-instruct"
MESSAGES = [{"role": "user", "content": "Tell me about chips in the cloud."}]


def test_chat_completion_answers_with_usage_and_routing_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 20
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert raw.headers["x-maas-replica"] in {"h100-0", "l4-0", "ascend-0", "kunlun-0"}
    assert raw.headers["x-maas-chip"] in {"nvidia-h100", "nvidia-l4", "ascend-910b", "kunlun-p800"}
    assert raw.headers["x-maas-simulated"] == "true"
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-maas-overhead-ms"]) >= 0


def test_client_request_id_is_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=5, extra_headers={"x-request-id": "my-trace-123"}
    )
    assert raw.headers["x-request-id"] == "my-trace-123"


def test_alias_resolves_to_the_model_and_the_answer_names_the_canonical_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=5)
    assert completion.model == MODEL
    assert completion.usage.completion_tokens > 0


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_max_completion_tokens_is_honoured(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_completion_tokens=4)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 4


def test_n_two_returns_two_choices_billed_together(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=6, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.usage.completion_tokens == 12


def test_stop_sequence_ends_the_text_before_it(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=40, seed=7)
    words = free.choices[0].message.content.split()
    stop = words[3]
    stopped = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=40, seed=7, stop=[stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stop not in stopped.choices[0].message.content.split()
    assert free.choices[0].message.content.startswith(stopped.choices[0].message.content.rstrip())


def test_chat_stream_opens_with_role_and_ends_with_finish_reason(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text


def test_stream_include_usage_adds_one_final_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    *body, last = chunks
    assert last.choices == []
    assert last.usage.completion_tokens == 8
    assert all(c.usage is None for c in body)
    assert all(len(c.choices) == 1 for c in body)


def test_stream_and_non_stream_report_the_same_usage(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=3)
    streamed = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=12, seed=3, stream=True, stream_options={"include_usage": True}
        )
    )
    assert streamed[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert streamed[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_stream_n_two_opens_each_choice_with_role(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, n=2, stream=True))
    openers = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role == "assistant"]
    assert sorted(openers) == [0, 1]
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


def test_text_completion_and_its_stream(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert completion.object == "text_completion"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage.completion_tokens == 5
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_completions_default_to_sixteen_tokens_like_openai(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="Count with me:")
    assert completion.usage.completion_tokens <= 16


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {MODEL, "default", "llama-8b", "other-model"} <= ids
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL
    assert model.owned_by == "maas-gateway"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


async def test_async_client_chat_and_stream(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    assert completion.usage.completion_tokens == 5
    stream = await aclient.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage.completion_tokens == 5
    completion = await aclient.completions.create(model=MODEL, prompt="hello", max_tokens=3)
    assert completion.usage.completion_tokens == 3


async def test_two_hundred_concurrent_requests_each_get_their_own_answer(sim_server, api_key: str) -> None:
    aclient = openai.AsyncOpenAI(base_url=sim_server.url + "/v1", api_key=api_key, max_retries=0, timeout=120)

    async def one(i: int):
        return await aclient.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"request number {i}"}],
            max_tokens=1 + i % 7,
            extra_headers={"x-request-id": f"load-{i}"},
        )

    raws = await asyncio.gather(*(one(i) for i in range(200)))
    ids = set()
    for i, raw in enumerate(raws):
        assert raw.headers["x-request-id"] == f"load-{i}"
        completion = raw.parse()
        ids.add(completion.id)
        assert completion.usage.completion_tokens == 1 + i % 7
        assert completion.choices[0].finish_reason == "length"
    assert len(ids) == 200
    await aclient.close()


def test_unknown_extra_field_is_refused_by_a_backend_that_cannot_use_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, extra_body={"top_k": 5})
    assert info.value.body["param"] == "top_k"


def test_routing_preference_for_a_chip_is_honoured(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=2, extra_body={"routing": {"chips": ["ascend-910b"]}}
    )
    assert raw.headers["x-maas-chip"] == "ascend-910b"


def test_health_and_readiness(sim_server) -> None:
    assert httpx.get(sim_server.url + "/healthz").status_code == 200
    ready = httpx.get(sim_server.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
