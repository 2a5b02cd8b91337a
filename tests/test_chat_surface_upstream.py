"""Every chat parameter, tool calling and structured outputs through an `openai` upstream.

The upstream is a second gateway process serving a simulated replica (a labelled
test double): the front gateway must pass every standard field through untouched,
relay streamed tool-call deltas, and learn the context length from the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from backends.openai_upstream import request_body
from gateway.schemas import ChatCompletionRequest, parse_body
from gateway.translate import chat_request
from tests.chat_cases import (
    ASK_WEATHER,
    TOOLS,
    City,
    assert_json_schema_output_and_parse,
    assert_stream_matches_whole,
    assert_valid_call,
    every_standard_field,
)
from tests.live_server import LiveServer, sim_config
from tests.processes import GatewayProcess, simulated_replica_config

MODEL = "llama-3.1-8b-instruct"


@pytest.fixture(scope="module")
def front(tmp_path_factory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("chat-upstream")
    upstream = GatewayProcess(simulated_replica_config("nvidia-h100", ledger=f"sqlite:///{work}/up.db"), work).start()
    config = sim_config(
        work,
        models=[{"name": MODEL, "aliases": ["default"], "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}}],
        replicas=[
            {
                "id": "remote-h100",
                "model": MODEL,
                "backend": "openai",
                "chip": "nvidia-h100",
                "url": upstream.url + "/v1",
            }
        ],
        routing={"policy": "round_robin", "health_interval_s": 3600},
    )
    server = LiveServer(config).start()
    yield server
    server.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def client(front: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=front.url + "/v1", api_key=front.create_key("upstream-chat"), max_retries=0)


def test_every_standard_field_reaches_the_upstream_untouched() -> None:
    sent = every_standard_field(MODEL)
    body = request_body(
        chat_request(parse_body(ChatCompletionRequest, sent), "r1", MODEL), "upstream-name", stream=False
    )
    for name, value in sent.items():
        if name not in ("model", "stream", "max_tokens", "n", "audio"):
            assert body[name] == value, name
    assert body["model"] == "upstream-name" and "max_tokens" not in body


def test_every_standard_parameter_is_accepted(client: openai.OpenAI) -> None:
    body = every_standard_field(MODEL)
    del body["model"], body["messages"], body["stream"]
    completion = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, **body)
    assert completion.service_tier == "default" and completion.choices[0].logprobs.content


def test_forced_tool_call_validates_against_its_schema(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ASK_WEATHER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_tokens=60,
    )
    (call,) = completion.choices[0].message.tool_calls
    assert_valid_call(call, "get_time")


def test_streamed_tool_calls_pass_through_reassemble_and_are_billed_the_same(client: openai.OpenAI) -> None:
    calls = assert_stream_matches_whole(
        client, model=MODEL, messages=ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=80, seed=3
    )
    assert len(calls) == 2


def test_json_schema_output_validates_and_parse_works(client: openai.OpenAI) -> None:
    assert_json_schema_output_and_parse(client, model=MODEL, messages=ASK_WEATHER, max_tokens=80)


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_langchain_structured_output_parses(front: LiveServer, client: openai.OpenAI, method: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=front.url + "/v1", api_key=client.api_key, max_tokens=80, max_retries=0)
    assert isinstance(llm.with_structured_output(City, method=method).invoke("Name a big city."), City)


def test_a_field_the_upstream_cannot_honour_is_refused_by_the_upstream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, max_tokens=5, extra_body={"web_search_options": {}}
        )
    assert info.value.body["param"] == "web_search_options"


def test_the_context_length_comes_from_the_upstreams_model_list(client: openai.OpenAI) -> None:
    # the front reads it once, in the background, right after it starts
    deadline = time.monotonic() + 10
    while "context_length" not in (card := client.models.retrieve(MODEL)).model_extra:
        assert time.monotonic() < deadline, "the front never learned the upstream's context length"
        time.sleep(0.05)
    assert card.model_extra["context_length"] == 131072
