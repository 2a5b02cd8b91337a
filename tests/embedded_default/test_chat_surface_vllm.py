"""Every chat parameter, tool calling and structured outputs on the real in-process engine (bundled model).

One engine for the module (the embedded default config). The model is SmolLM2-135M,
whose chat template ignores tools: tools reach it in the documented tool-prompt
format, and forced calls are held to their schemas by guided decoding, so even this
small model's arguments validate. Answers are greedy (temperature 0) and short.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from backends.bundled_model import prepare_bundled_model
from tests.chat_cases import (
    ASK_WEATHER,
    TOOLS,
    WEATHER,
    City,
    assert_json_schema_output_and_parse,
    assert_stream_matches_whole,
    assert_valid_call,
    every_standard_field,
)
from tests.live_server import LiveServer

pytestmark = pytest.mark.vllm

MODEL = "smollm2-135m-instruct"
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
GREEDY = {"temperature": 0, "seed": 0}


@pytest.fixture(scope="module")
def model_dir():
    return prepare_bundled_model()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


# ---- every standard parameter ----------------------------------------------------------


def test_every_standard_parameter_is_accepted(server: LiveServer) -> None:
    response = httpx.post(server.url + "/v1/chat/completions", json=every_standard_field("default"), timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service_tier"] == "default"
    assert len(body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 2


def test_every_standard_parameter_is_accepted_when_streaming(client: openai.OpenAI) -> None:
    body = every_standard_field(MODEL, stream=True)
    del body["model"], body["messages"], body["stream"]
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, stream=True, **body))
    assert chunks[-1].usage.completion_tokens == 4


def test_logit_bias_forces_a_token(client: openai.OpenAI, tokenizer) -> None:
    (token,) = tokenizer.encode(" yes", add_special_tokens=False)
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, max_tokens=3, logit_bias={str(token): 100}, **GREEDY
    )
    assert completion.choices[0].message.content == " yes yes yes"


def test_n_seed_and_stop_are_honoured(client: openai.OpenAI) -> None:
    sampled = {"model": MODEL, "messages": ASK_WEATHER, "max_tokens": 8, "temperature": 1.0, "seed": 42}
    first = client.chat.completions.create(n=2, **sampled)
    again = client.chat.completions.create(n=2, **sampled)
    assert len(first.choices) == 2
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    stopped = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, max_tokens=20, stop=[" "], **GREEDY)
    assert stopped.choices[0].finish_reason == "stop" and " " not in stopped.choices[0].message.content


# ---- tool calling ------------------------------------------------------------------------


def test_forced_tool_call_validates_against_its_schema(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="default", messages=ASK_WEATHER, tools=TOOLS, tool_choice=FORCE_WEATHER, max_tokens=60, **GREEDY
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.id and call.type == "function"
    assert_valid_call(call, "get_weather")


async def test_required_tool_call_with_the_async_client(server: LiveServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="EMPTY", max_retries=0, timeout=120) as aclient:
        completion = await aclient.chat.completions.create(
            model=MODEL,
            messages=ASK_WEATHER,
            tools=TOOLS,
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=60,
            **GREEDY,
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert_valid_call(call)


def test_streamed_tool_call_reassembles_into_the_same_call_and_is_billed_the_same(client: openai.OpenAI) -> None:
    (call,) = assert_stream_matches_whole(
        client, model=MODEL, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=60, **GREEDY
    )
    assert_valid_call(call)


def test_tool_result_round_trip_is_rendered_for_the_model(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice=FORCE_WEATHER, max_tokens=60, **GREEDY
    )
    (call,) = first.choices[0].message.tool_calls
    history = [
        *ASK_WEATHER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"celsius": 21, "sky": "clear"})},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], max_tokens=8, **GREEDY)
    assert second.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # the call and its result are part of the prompt now
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + 10


def test_langchain_bind_tools_gets_a_valid_call(server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=server.url + "/v1", api_key="EMPTY", max_tokens=60, temperature=0)
    message = llm.bind_tools([WEATHER], tool_choice="get_weather").invoke("Weather in Berlin?")
    (call,) = message.tool_calls
    assert_valid_call({"function": {"name": call["name"], "arguments": json.dumps(call["args"])}}, "get_weather")


# ---- structured outputs ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_langchain_structured_output_parses(server: LiveServer, method: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=server.url + "/v1", api_key="EMPTY", max_tokens=60, temperature=0)
    assert isinstance(llm.with_structured_output(City, method=method).invoke("Name a big city."), City)


def test_json_schema_output_validates_and_parse_works(client: openai.OpenAI) -> None:
    assert_json_schema_output_and_parse(
        client, model=MODEL, messages=[{"role": "user", "content": "Name a big city."}], max_tokens=60, **GREEDY
    )


# ---- context window ---------------------------------------------------------------------------


def test_models_show_the_engines_context_length(client: openai.OpenAI) -> None:
    card = client.models.retrieve(MODEL)
    assert card.model_extra["context_length"] == 2048
