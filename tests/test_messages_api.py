"""Anthropic's Messages API through Anthropic's own SDK, on the simulated pool (a labelled test double)."""

from __future__ import annotations

import anthropic
import httpx
import jsonschema
import orjson
import pytest

from tests.live_server import LiveServer
from tests.surfaces import CHAT, EMBED, MESSAGES_WEATHER, WEATHER_SCHEMA

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def key(surfaces_server: LiveServer) -> str:
    return surfaces_server.create_key("messages-acme")


@pytest.fixture
def client(surfaces_server: LiveServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=surfaces_server.url, api_key=key, max_retries=0, timeout=30)


def _events(server: LiveServer, key: str, body: dict) -> list[tuple[str, dict]]:
    """The raw server-sent events of a streamed message: (event name, data)."""
    with httpx.stream("POST", server.url + "/v1/messages", json={**body, "stream": True},
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01"}) as response:
        assert response.status_code == 200
        raw = response.read().decode()
    events = []
    for block in raw.strip().split("\n\n"):
        name, data = block.split("\n", 1)
        events.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return events


def test_a_message_has_text_a_stop_reason_and_usage(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="default", max_tokens=300, system="Be brief.", messages=HELLO)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == CHAT
    (block,) = message.content
    assert block.type == "text" and block.text
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0


def test_max_tokens_and_stop_sequences_give_their_stop_reasons(client: anthropic.Anthropic) -> None:
    cut = client.messages.create(model=CHAT, max_tokens=3, messages=HELLO)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    stopped = client.messages.create(model=CHAT, max_tokens=300, messages=HELLO, stop_sequences=[" "])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == " "
    assert " " not in stopped.content[0].text


def test_tool_use_and_its_result_continue_the_conversation(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=CHAT, max_tokens=200, messages=ASK, tools=[MESSAGES_WEATHER],
                                   tool_choice={"type": "tool", "name": "get_weather"})
    assert first.stop_reason == "tool_use"
    (use,) = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.id
    jsonschema.validate(use.input, WEATHER_SCHEMA)
    second = client.messages.create(
        model=CHAT, max_tokens=50, tools=[MESSAGES_WEATHER],
        messages=[*ASK, {"role": "assistant", "content": first.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}]}],
    )
    assert second.stop_reason in ("end_turn", "max_tokens", "tool_use")
    assert second.usage.input_tokens > first.usage.input_tokens


def test_the_stream_is_anthropics_event_sequence(surfaces_server: LiveServer, key: str) -> None:
    events = _events(surfaces_server, key, {"model": CHAT, "max_tokens": 300, "messages": HELLO})
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(data["type"] == name for name, data in events)
    assert {data["delta"]["type"] for name, data in events if name == "content_block_delta"} == {"text_delta"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == len(names) - 6


def test_a_streamed_message_equals_the_whole_one(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(model=CHAT, max_tokens=300, messages=HELLO)
    with client.messages.stream(model=CHAT, max_tokens=300, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == whole.content[0].text
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    assert final.stop_reason == whole.stop_reason


def test_streamed_tool_input_reassembles_into_the_same_call(client: anthropic.Anthropic) -> None:
    kwargs = {"model": CHAT, "max_tokens": 200, "messages": ASK, "tools": [MESSAGES_WEATHER],
              "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    whole = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content if b.type == "tool_use"] == [
        b.input for b in whole.content if b.type == "tool_use"
    ]


def test_count_tokens_is_the_gateways_estimate_and_says_so(surfaces_server: LiveServer, client: anthropic.Anthropic,
                                                           key: str) -> None:
    short = client.messages.count_tokens(model=CHAT, messages=HELLO)
    longer = client.messages.count_tokens(model=CHAT, messages=HELLO, system="You are a careful assistant. " * 10)
    assert 0 < short.input_tokens < longer.input_tokens
    raw = httpx.post(surfaces_server.url + "/v1/messages/count_tokens", json={"model": CHAT, "messages": HELLO},
                     headers={"x-api-key": key})
    assert raw.headers["x-maas-token-count"] == "estimate" and raw.json()["estimated"] is True


def test_a_wrong_key_is_an_authentication_error_in_anthropics_shape(surfaces_server: LiveServer) -> None:
    wrong = anthropic.Anthropic(base_url=surfaces_server.url, api_key="sk-maas-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        wrong.messages.create(model=CHAT, max_tokens=5, messages=HELLO)
    assert refused.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                             "message": "Incorrect API key provided."}}
    # no key at all: the same type
    response = httpx.post(surfaces_server.url + "/v1/messages", json={"model": CHAT, "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_a_bearer_key_works_as_well_as_x_api_key(surfaces_server: LiveServer, key: str) -> None:
    response = httpx.post(surfaces_server.url + "/v1/messages", headers={"authorization": f"Bearer {key}"},
                          json={"model": CHAT, "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 200 and response.json()["type"] == "message"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"messages": HELLO}, 400, "invalid_request_error"),  # no max_tokens
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, 400,
         "invalid_request_error"),
        ({"max_tokens": 5, "messages": HELLO, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400,
         "invalid_request_error"),
        ({"model": "no-such-model", "max_tokens": 5, "messages": HELLO}, 404, "not_found_error"),
        ({"model": EMBED, "max_tokens": 5, "messages": HELLO}, 400, "invalid_request_error"),
    ],
)
def test_errors_take_anthropics_shape_on_this_surface(surfaces_server: LiveServer, key: str, body: dict, status: int,
                                                      kind: str) -> None:
    response = httpx.post(surfaces_server.url + "/v1/messages", json={"model": CHAT, **body},
                          headers={"x-api-key": key})
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == kind and error["error"]["message"]


def test_output_config_format_gives_json_of_the_schema_and_cache_control_is_accepted(
    client: anthropic.Anthropic,
) -> None:
    message = client.messages.create(
        model=CHAT, max_tokens=200, messages=[{"role": "user", "content": "Weather as JSON."}],
        output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}, cache_control={"type": "ephemeral"},
    )
    jsonschema.validate(orjson.loads(message.content[0].text), WEATHER_SCHEMA)
