"""Every chat parameter, tool calling and structured outputs on the simulated pool, through real clients.

The simulated replicas are a labelled test double: their tool calls and JSON are
synthetic, but must validate against the client's schemas and take OpenAI's shapes.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

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

MODEL = "llama-3.1-8b-instruct"
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def test_every_standard_parameter_is_accepted_and_the_tier_echoed(sim_server: LiveServer, api_key: str) -> None:
    response = httpx.post(
        sim_server.url + "/v1/chat/completions",
        json=every_standard_field(MODEL),
        headers={"authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service_tier"] == "default"
    assert body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]


def test_every_standard_parameter_is_accepted_when_streaming(client: openai.OpenAI) -> None:
    body = every_standard_field(MODEL, stream=True)
    del body["model"], body["messages"], body["stream"]
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, stream=True, **body))
    assert chunks[-1].usage.completion_tokens > 0
    assert all(chunk.service_tier == "default" for chunk in chunks)


def test_forced_tool_call_validates_against_its_schema(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice=FORCE_WEATHER,
        parallel_tool_calls=False,
        max_tokens=60,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert_valid_call(call, "get_weather")


async def test_required_tool_calls_with_the_async_client(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=80, seed=5
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 2
    assert {assert_valid_call(call) is not None for call in choice.message.tool_calls} == {True}


def test_streamed_tool_calls_reassemble_into_the_same_calls_billed_the_same(client: openai.OpenAI) -> None:
    kwargs = {"model": MODEL, "messages": ASK_WEATHER, "tools": TOOLS, "tool_choice": "required", "seed": 9}
    calls = assert_stream_matches_whole(client, max_tokens=80, **kwargs)
    assert len(calls) == 2
    # the double is deterministic: the very same argument text, token for token
    whole = client.chat.completions.create(max_tokens=80, **kwargs).choices[0].message.tool_calls
    assert [c["function"]["arguments"] for c in calls] == [c.function.arguments for c in whole]


def test_raw_sse_tool_call_deltas_take_openais_shape(sim_server: LiveServer, api_key: str) -> None:
    body = {"model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER], "tool_choice": "required", "stream": True}
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.stream(
        "POST", sim_server.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    choices = [event["choices"][0] for event in events]
    assert choices[0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    head = choices[1]["delta"]["tool_calls"][0]
    assert set(head) == {"index", "id", "type", "function"} and set(head["function"]) == {"name", "arguments"}
    assert head["type"] == "function" and head["function"]["name"] == "get_weather"
    rest = [c["delta"]["tool_calls"][0] for c in choices[2:] if c["delta"].get("tool_calls")]
    assert rest and all(set(call) == {"index", "function"} and set(call["function"]) == {"arguments"} for call in rest)
    assert choices[-1]["finish_reason"] == "tool_calls"


def test_tool_round_trip_answers_the_tool_result(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], max_tokens=60)
    (call,) = first.choices[0].message.tool_calls
    messages = [
        *ASK_WEATHER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"celsius": 21})},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=10)
    assert second.choices[0].message.tool_calls is None and second.choices[0].message.content


def test_json_schema_output_validates_and_parse_works(client: openai.OpenAI) -> None:
    assert_json_schema_output_and_parse(client, model=MODEL, messages=ASK_WEATHER, max_tokens=80)


def test_json_object_output_is_an_object(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, response_format={"type": "json_object"}, max_tokens=40
    )
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_deprecated_functions_answer_with_function_call(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        functions=[WEATHER["function"]],
        function_call={"name": "get_weather"},
        max_tokens=60,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.tool_calls is None
    assert_valid_call({"function": choice.message.function_call.model_dump()}, "get_weather")


def test_langchain_bind_tools_gets_valid_tool_calls(sim_server: LiveServer, api_key: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=sim_server.url + "/v1", api_key=api_key, max_tokens=80, max_retries=0)
    message = llm.bind_tools(TOOLS, tool_choice="any").invoke("What time is it in Tokyo and the weather in Paris?")
    assert message.tool_calls
    for call in message.tool_calls:
        assert_valid_call({"function": {"name": call["name"], "arguments": json.dumps(call["args"])}})


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_langchain_structured_output_parses(sim_server: LiveServer, api_key: str, method: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=sim_server.url + "/v1", api_key=api_key, max_tokens=80, max_retries=0)
    city = llm.with_structured_output(City, method=method).invoke("Name a big city.")
    assert isinstance(city, City)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"web_search_options": {}}, "web_search_options"),
        ({"modalities": ["text", "audio"], "audio": {"format": "mp3", "voice": "alloy"}}, "modalities"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"tools": [{"type": "custom", "custom": {"name": "sql"}}]}, "tools"),
    ],
)
def test_what_no_replica_can_honour_is_refused_naming_field_and_replicas(
    client: openai.OpenAI, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, max_tokens=5, extra_body=extra)
    error = info.value.body
    assert (error["param"], error["code"]) == (param, "unsupported_parameter")
    assert "h100-0" in error["message"] and "kunlun-0" in error["message"]


def test_models_show_the_simulated_models_context_length(client: openai.OpenAI) -> None:
    card = client.models.retrieve(MODEL)
    assert card.model_extra["context_length"] == card.model_extra["max_model_len"] == 131072


def test_parse_with_a_strict_pydantic_tool_fills_parsed_arguments(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=[openai.pydantic_function_tool(City)],
        tool_choice="required",
        max_tokens=80,
    )
    (call,) = completion.choices[0].message.tool_calls
    assert isinstance(call.function.parsed_arguments, City)
