"""OpenAI's Responses API through the official SDK (and LangChain), on the simulated pool.

The simulated replicas are a labelled test double: their text is filler, their
tool calls synthetic but valid against the tool's schema.
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.live_server import LiveServer
from tests.surfaces import CHAT, EMBED, RESPONSES_WEATHER, WEATHER_SCHEMA

ASK = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def key(surfaces_server: LiveServer) -> str:
    return surfaces_server.create_key("responses-acme")


@pytest.fixture
def client(surfaces_server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=surfaces_server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_a_text_response_has_a_message_usage_and_echoes_the_request(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="default", input="Say hello.", instructions="Be brief.", temperature=0.5, metadata={"case": "1"}
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == CHAT
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert response.output_text and response.output_text == message.content[0].text
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert (response.instructions, response.temperature, response.metadata) == ("Be brief.", 0.5, {"case": "1"})


def test_max_output_tokens_makes_the_response_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT, input="Tell me a long story.", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5


def test_streamed_events_come_in_the_documented_order_numbered_from_zero(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=CHAT, input="Say hello.", stream=True))
    kinds = [event.type for event in events]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == text and final.usage.output_tokens > 0
    # the same answer, not streamed (the double is deterministic for a prompt)
    assert client.responses.create(model=CHAT, input="Say hello.").output_text == text


def test_a_function_call_and_its_output_continue_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model=CHAT, input=ASK, tools=[RESPONSES_WEATHER], tool_choice="required",
                                    parallel_tool_calls=False)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), WEATHER_SCHEMA)
    second = client.responses.create(
        model=CHAT, previous_response_id=first.id, tools=[RESPONSES_WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}],
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    # the whole conversation (question, call, result) is the prompt now
    assert second.usage.input_tokens > first.usage.input_tokens
    # the same continuation without stored state: the items sent in full
    again = client.responses.create(
        model=CHAT, store=False, tools=[RESPONSES_WEATHER],
        input=[{"role": "user", "content": ASK}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"celsius": 21}'}],
    )
    assert again.usage.input_tokens == second.usage.input_tokens


def test_streamed_function_call_arguments_reassemble_into_the_call(client: openai.OpenAI) -> None:
    kwargs = {"model": CHAT, "input": ASK, "tools": [RESPONSES_WEATHER], "tool_choice": "required",
              "parallel_tool_calls": False}
    whole = client.responses.create(**kwargs)
    events = list(client.responses.create(stream=True, **kwargs))
    kinds = [e.type for e in events]
    assert kinds[2] == "response.output_item.added" and events[2].item.type == "function_call"
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    pieces = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    streamed = events[-1].response.output[0]
    assert pieces == streamed.arguments == whole.output[0].arguments
    assert events[-3].arguments == pieces and events[-3].name == "get_weather"


def test_previous_response_id_continues_a_stored_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model=CHAT, input="My name is Ada.")
    second = client.responses.create(model=CHAT, input="What is my name?", previous_response_id=first.id)
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    # input_items lists this request's own input only
    (item,) = client.responses.input_items.list(second.id).data
    assert item.type == "message" and item.content[0].text == "What is my name?"


def test_store_false_is_honoured(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT, input="Forget me.", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=CHAT, input="Go on.", previous_response_id=response.id)
    assert refused.value.body["param"] == "previous_response_id"


def test_a_stored_response_is_visible_only_to_its_tenant(surfaces_server: LiveServer, client: openai.OpenAI) -> None:
    mine = client.responses.create(model=CHAT, input="Private.")
    other = openai.OpenAI(base_url=surfaces_server.url + "/v1", api_key=surfaces_server.create_key("responses-globex"),
                          max_retries=0)
    for attempt in (lambda: other.responses.retrieve(mine.id), lambda: other.responses.delete(mine.id),
                    lambda: other.responses.input_items.list(mine.id),
                    lambda: other.responses.create(model=CHAT, input="Go on.", previous_response_id=mine.id)):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert client.responses.retrieve(mine.id).output_text == mine.output_text


def test_retrieve_then_delete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=CHAT, input="Keep this.")
    assert client.responses.retrieve(response.id).model_dump() == response.model_dump()
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(response.id)
    assert gone.value.body["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_input_items_page_in_either_order(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=CHAT, input=[{"role": "user", "content": f"part {i}"} for i in range(5)]
    )
    newest_first = client.responses.input_items.list(response.id, limit=2)
    assert [i.content[0].text for i in newest_first.data] == ["part 4", "part 3"] and newest_first.has_more
    everything = [i.content[0].text for i in client.responses.input_items.list(response.id, order="asc")]
    assert everything == [f"part {i}" for i in range(5)]  # the SDK follows the cursor


def test_a_tenant_lists_its_stored_responses_newest_first_and_only_its_own(surfaces_server: LiveServer) -> None:
    tenant_key = surfaces_server.create_key("responses-lister")
    mine = openai.OpenAI(base_url=surfaces_server.url + "/v1", api_key=tenant_key, max_retries=0, timeout=30)
    made = [mine.responses.create(model=CHAT, input=f"note {i}").id for i in range(3)]
    mine.responses.create(model=CHAT, input="not kept", store=False)
    other = surfaces_server.create_key("responses-lister-neighbour")
    httpx.post(surfaces_server.url + "/v1/responses", headers={"authorization": f"Bearer {other}"},
               json={"model": CHAT, "input": "theirs"}, timeout=30).raise_for_status()

    def listed(key: str, **params: str) -> dict:
        answer = httpx.get(surfaces_server.url + "/v1/responses", params=params,
                           headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = listed(tenant_key, limit="2")
    assert [r["id"] for r in first["data"]] == made[::-1][:2] and first["has_more"]
    retrieved = httpx.get(surfaces_server.url + f"/v1/responses/{made[2]}",
                          headers={"authorization": f"Bearer {tenant_key}"}, timeout=10).json()
    assert first["data"][0] == retrieved  # each listed as retrieve answers it
    rest = listed(tenant_key, limit="2", after=first["last_id"])
    assert [r["id"] for r in rest["data"]] == [made[0]] and not rest["has_more"]
    assert [r["id"] for r in listed(tenant_key, order="asc")["data"]] == made
    theirs = listed(other)["data"]
    assert len(theirs) == 1 and theirs[0]["id"] not in made
    # another tenant's id is no cursor; bad parameters are 400s naming them
    for params, param in (({"after": theirs[0]["id"]}, "after"), ({"limit": "0"}, "limit"), ({"order": "up"}, "order")):
        answer = httpx.get(surfaces_server.url + "/v1/responses", params=params,
                           headers={"authorization": f"Bearer {tenant_key}"}, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param


class City(BaseModel):
    name: str
    population: int


def test_json_schema_text_format_parses_into_the_model(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(model=CHAT, input="Name a big city.", text_format=City)
    assert isinstance(parsed.output_parsed, City)


def test_the_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=CHAT, input="Say hello.") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(texts)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
         "input[0].content[0].type"),
        ({"background": True}, "background"),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": [RESPONSES_WEATHER]}, "tool_choice"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_cannot_be_honoured_is_refused_with_the_field_named(
    surfaces_server: LiveServer, key: str, body: dict, param: str
) -> None:
    response = httpx.post(surfaces_server.url + "/v1/responses", json={"model": CHAT, "input": "hi", **body},
                          headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_an_embedding_model_is_refused_on_responses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=EMBED, input="hi")
    assert refused.value.body["code"] == "unsupported_endpoint" and "/v1/embeddings" in refused.value.body["message"]


def test_langchain_speaks_the_responses_api(surfaces_server: LiveServer, key: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=CHAT, base_url=surfaces_server.url + "/v1", api_key=key, use_responses_api=True,
                     max_retries=0)
    message = llm.invoke("Say hello.")
    assert message.text and message.usage_metadata["output_tokens"] > 0
    called = llm.bind_tools([RESPONSES_WEATHER], tool_choice="required").invoke(ASK)
    (call,) = called.tool_calls[:1]
    assert call["name"] == "get_weather"
    jsonschema.validate(call["args"], WEATHER_SCHEMA)
