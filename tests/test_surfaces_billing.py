"""Billing on the Responses, Messages and embeddings surfaces: the same ledger, limits and budgets as chat.

Streamed or not, an answer is billed the same; a stream the client hangs up is
billed for what it delivered; rate limits and budgets refuse on every endpoint,
in each surface's own error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.live_server import LiveServer
from tests.surfaces import CHAT, CHAT_PRICE, EMBED, ledger_rows, price_nano, surfaces_config

HELLO = [{"role": "user", "content": "Say hello."}]


def _openai(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def _anthropic(server: LiveServer, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=30)


def _billed(row: tuple) -> tuple:
    """What a row charges: prompt tokens, completion tokens, price (not how it was delivered)."""
    return row[3], row[4], row[5]


def test_a_response_is_billed_the_same_streamed_or_not(surfaces_server: LiveServer) -> None:
    client = _openai(surfaces_server, surfaces_server.create_key("twins-responses"))
    whole = client.responses.create(model=CHAT, input="identical twins", max_output_tokens=40)
    streamed = list(client.responses.create(model=CHAT, input="identical twins", max_output_tokens=40, stream=True))
    plain, stream = ledger_rows(surfaces_server, "twins-responses", expect=2)
    assert (plain[1], plain[2], stream[1], stream[2]) == ("responses", 0, "responses", 1)
    assert _billed(plain) == _billed(stream)
    usage = streamed[-1].response.usage
    assert (usage.input_tokens, usage.output_tokens) == (whole.usage.input_tokens, whole.usage.output_tokens)
    assert plain[5] == price_nano(whole.usage.input_tokens, whole.usage.output_tokens, CHAT_PRICE)


def test_a_message_is_billed_the_same_streamed_or_not(surfaces_server: LiveServer) -> None:
    client = _anthropic(surfaces_server, surfaces_server.create_key("twins-messages"))
    whole = client.messages.create(model=CHAT, max_tokens=40, messages=HELLO)
    with client.messages.stream(model=CHAT, max_tokens=40, messages=HELLO) as stream:
        final = stream.get_final_message()
    plain, streamed = ledger_rows(surfaces_server, "twins-messages", expect=2)
    assert (plain[1], plain[2], streamed[1], streamed[2]) == ("messages", 0, "messages", 1)
    assert _billed(plain) == _billed(streamed)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (whole.usage.input_tokens, whole.usage.output_tokens)


@pytest.fixture(scope="module")
def real_speed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One chat replica at its chip's real speed (L4: ~76 ms a token), so a hang-up lands mid-answer."""
    config = surfaces_config(
        tmp_path_factory.mktemp("real-speed"),
        replicas=[{"id": "l4-real", "model": CHAT, "backend": "simulated", "chip": "nvidia-l4", "time_scale": 1.0},
                  {"id": "embed-0", "model": EMBED, "backend": "simulated", "chip": "nvidia-l4", "time_scale": 1.0}],
    )
    server = LiveServer(config).start()
    yield server
    server.stop()


def _assert_cut_billed_for_delivery(server: LiveServer, tenant: str, read: int) -> None:
    (row,) = ledger_rows(server, tenant, expect=1)
    assert row[6] == "partial"
    # what was delivered: what the client read, plus at most one token already on the wire
    assert read <= row[4] <= read + 1
    assert row[5] == price_nano(row[3], row[4], CHAT_PRICE)


def test_a_response_stream_cut_midway_bills_delivered_tokens(real_speed: LiveServer) -> None:
    client = _openai(real_speed, real_speed.create_key("cut-responses"))
    stream = client.responses.create(model=CHAT, input="a long answer please", max_output_tokens=150, stream=True)
    read = 0
    for event in stream:
        read += event.type == "response.output_text.delta"
        if read == 3:
            break
    stream.close()
    _assert_cut_billed_for_delivery(real_speed, "cut-responses", read)


def test_a_message_stream_cut_midway_bills_delivered_tokens(real_speed: LiveServer) -> None:
    client = _anthropic(real_speed, real_speed.create_key("cut-messages"))
    read = 0
    with client.messages.stream(model=CHAT, max_tokens=150, messages=HELLO) as stream:
        for _ in stream.text_stream:
            read += 1
            if read == 3:
                break
    _assert_cut_billed_for_delivery(real_speed, "cut-messages", read)


# ---- limits and budgets on every endpoint -------------------------------------------------------

def _responses(server: LiveServer, key: str) -> None:
    _openai(server, key).responses.create(model=CHAT, input="hi", max_output_tokens=5)


def _messages(server: LiveServer, key: str) -> None:
    _anthropic(server, key).messages.create(model=CHAT, max_tokens=5, messages=HELLO)


def _embeddings(server: LiveServer, key: str) -> None:
    _openai(server, key).embeddings.create(model=EMBED, input="hi")


ENDPOINTS: dict[str, Callable[[LiveServer, str], None]] = {
    "responses": _responses, "messages": _messages, "embeddings": _embeddings,
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_the_rate_limit_holds_on_every_endpoint(surfaces_server: LiveServer, endpoint: str) -> None:
    key = surfaces_server.create_key(f"rpm-{endpoint}", rpm=1)
    call = ENDPOINTS[endpoint]
    call(surfaces_server, key)
    refused = anthropic.RateLimitError if endpoint == "messages" else openai.RateLimitError
    with pytest.raises(refused) as second:
        call(surfaces_server, key)
    response = second.value.response
    assert response.status_code == 429 and response.headers["retry-after"]
    error = second.value.body  # the openai SDK hands over the inner error object, anthropic's the whole body
    if endpoint == "messages":
        assert error == {"type": "error", "error": {"type": "rate_limit_error", "message": error["error"]["message"]}}
    else:
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert len(ledger_rows(surfaces_server, f"rpm-{endpoint}", expect=1)) == 1


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_an_exhausted_budget_refuses_every_endpoint_and_charges_nothing(surfaces_server: LiveServer,
                                                                        endpoint: str) -> None:
    key = surfaces_server.create_key(f"broke-{endpoint}", budget_usd=Decimal("0.000000001"), budget_period="total")
    refused = anthropic.RateLimitError if endpoint == "messages" else openai.RateLimitError
    with pytest.raises(refused) as refusal:
        ENDPOINTS[endpoint](surfaces_server, key)
    body = refusal.value.body
    if endpoint == "messages":
        assert body["error"]["type"] == "rate_limit_error" and "Budget" in body["error"]["message"]
    else:
        assert body["code"] == "insufficient_quota"
    assert ledger_rows(surfaces_server, f"broke-{endpoint}") == []


# ---- a replica that dies mid-stream (last: it leaves the real-speed replica down) ----------------

def _stream_until_killed(server: LiveServer, path: str, body: dict, key: str, delta: str) -> list[tuple[str, dict]]:
    """Stream ``body``; after three ``delta`` events kill the replica; return every event received."""
    events: list[tuple[str, dict]] = []
    deltas = 0
    with httpx.stream("POST", server.url + path, json={**body, "stream": True}, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, orjson.loads(line.removeprefix("data: "))))
                deltas += name == delta
                if deltas == 3:
                    server.run(_kill(server))
    return events


def _kill(server: LiveServer):  # a coroutine factory for server.run
    async def kill() -> None:
        server.gateway.registry.get("l4-real").backend.kill()

    return kill


def test_a_response_stream_whose_replica_dies_ends_in_response_failed_billed_for_delivery(
    real_speed: LiveServer,
) -> None:
    key = real_speed.create_key("dies-responses")
    events = _stream_until_killed(real_speed, "/v1/responses", {"model": CHAT, "input": "a long answer please"}, key,
                                  "response.output_text.delta")
    name, failed = events[-1]
    assert name == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] and [e[1]["sequence_number"] for e in events] == list(range(len(events)))
    (row,) = ledger_rows(real_speed, "dies-responses", expect=1)
    assert row[6] == "partial" and 3 <= row[4] <= 4
    # a failed response is stored as failed
    client = _openai(real_speed, key)
    assert client.responses.retrieve(failed["response"]["id"]).status == "failed"


def test_a_message_stream_whose_replica_dies_ends_in_an_error_event(real_speed: LiveServer) -> None:
    real_speed.run(_revive(real_speed))
    key = real_speed.create_key("dies-messages")
    events = _stream_until_killed(real_speed, "/v1/messages", {"model": CHAT, "max_tokens": 150, "messages": HELLO},
                                  key, "content_block_delta")
    assert events[-1] == ("error", {"type": "error", "error": {"type": events[-1][1]["error"]["type"],
                                                               "message": events[-1][1]["error"]["message"]}})
    assert events[-1][1]["error"]["type"] in ("overloaded_error", "api_error")
    (row,) = ledger_rows(real_speed, "dies-messages", expect=1)
    assert row[6] == "partial" and 3 <= row[4] <= 4


def _revive(server: LiveServer):  # a coroutine factory for server.run
    async def revive() -> None:
        replica = server.gateway.registry.get("l4-real")
        replica.backend.revive()
        await replica.backend.start()
        replica.breaker.record_success()

    return revive
