"""The new surfaces over an ``openai`` upstream: a second gateway process speaking OpenAI's protocol.

The upstream is a maas gateway over simulated replicas (a labelled test double); the
gateway under test reaches it as any OpenAI-compatible server, so embeddings go to
its ``/v1/embeddings`` and Responses / Messages reach it as chat completions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import jsonschema
import openai
import pytest

from backends.sim_embedding import sim_embedding
from tests.live_server import LiveServer, sim_config
from tests.processes import GatewayProcess
from tests.surfaces import (
    CHAT,
    CHAT_PRICE,
    EMBED,
    EMBED_PRICE,
    MESSAGES_WEATHER,
    RESPONSES_WEATHER,
    WEATHER_SCHEMA,
    ledger_rows,
    price_nano,
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("surfaces-upstream")
    config = {
        "server": {"allow_anonymous": True},
        "models": [{"name": CHAT}, {"name": EMBED, "kind": "embedding"}],
        "replicas": [
            {"id": "up-chat", "model": CHAT, "backend": "simulated", "chip": "kunlun-p800", "time_scale": 0.02},
            {"id": "up-embed", "model": EMBED, "backend": "simulated", "chip": "kunlun-p800", "time_scale": 0.02},
        ],
        "ledger": f"sqlite:///{work}/up.db",
        "limits": "memory",
    }
    proc = GatewayProcess(config, work).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def front(upstream: GatewayProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = sim_config(
        tmp_path_factory.mktemp("surfaces-front"),
        models=[{"name": CHAT, "price": CHAT_PRICE}, {"name": EMBED, "kind": "embedding", "price": EMBED_PRICE}],
        replicas=[
            {"id": "remote-chat", "model": CHAT, "backend": "openai", "chip": "kunlun-p800", "url": upstream.url + "/v1"},
            {"id": "remote-embed", "model": EMBED, "backend": "openai", "chip": "kunlun-p800",
             "url": upstream.url + "/v1"},
        ],
    )
    server = LiveServer(config).start()
    yield server
    server.stop()


def test_embeddings_pass_through_with_the_upstreams_usage_billed_here(front: LiveServer) -> None:
    client = openai.OpenAI(base_url=front.url + "/v1", api_key=front.create_key("up-embed"), max_retries=0)
    docs = ["Paris is in France.", "Bananas are yellow."]
    raw = client.embeddings.with_raw_response.create(model=EMBED, input=docs, dimensions=32)
    result = raw.parse()
    assert raw.headers["x-maas-replica"] == "remote-embed"
    for doc, item in zip(docs, result.data, strict=True):
        assert item.embedding == pytest.approx(sim_embedding(doc, seed=0, dimensions=32), abs=1e-6)
    (row,) = ledger_rows(front, "up-embed", expect=1)
    assert row[3] == result.usage.prompt_tokens > 0 and row[5] == price_nano(row[3], 0, EMBED_PRICE)


def test_a_response_with_a_function_call_goes_through_the_upstreams_chat(front: LiveServer) -> None:
    client = openai.OpenAI(base_url=front.url + "/v1", api_key=front.create_key("up-responses"), max_retries=0)
    response = client.responses.create(model=CHAT, input="Weather in Paris?", tools=[RESPONSES_WEATHER],
                                       tool_choice="required", parallel_tool_calls=False)
    (call,) = response.output
    jsonschema.validate(json.loads(call.arguments), WEATHER_SCHEMA)
    events = list(client.responses.create(model=CHAT, input="Say hello.", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens > 0


def test_a_message_with_tool_use_goes_through_the_upstreams_chat(front: LiveServer) -> None:
    claude = anthropic.Anthropic(base_url=front.url, api_key=front.create_key("up-messages"), max_retries=0)
    message = claude.messages.create(model=CHAT, max_tokens=200, tools=[MESSAGES_WEATHER],
                                     tool_choice={"type": "any"}, messages=[{"role": "user", "content": "Paris?"}])
    assert message.stop_reason == "tool_use"
    with claude.messages.stream(model=CHAT, max_tokens=20, messages=[{"role": "user", "content": "Hi"}]) as stream:
        assert stream.get_final_message().usage.output_tokens > 0
