"""The `openai` backend against a second process speaking the OpenAI protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import openai
import pytest

from tests.live_server import LiveServer, sim_config
from tests.processes import GatewayProcess, free_port, simulated_replica_config

MODEL = "llama-3.1-8b-instruct"
MESSAGES = [{"role": "user", "content": "What runs on a Kunlun card?"}]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("upstream")
    proc = GatewayProcess(simulated_replica_config("kunlun-p800", ledger=f"sqlite:///{work}/up.db"), work).start()
    yield proc
    proc.stop()


class _SilentServer:
    """Accepts connections and never answers: an upstream that hangs."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):  # read the request, answer nothing, until the client gives up
                pass
            writer.close()

        self._server = await asyncio.start_server(hold, "127.0.0.1", self.port)


@pytest.fixture(scope="module")
def gateway(upstream: GatewayProcess, tmp_path_factory) -> Iterator[tuple[LiveServer, _SilentServer]]:
    silent = _SilentServer()
    dead_port = free_port()
    config = sim_config(
        tmp_path_factory.mktemp("front"),
        models=[
            {"name": MODEL, "price": {"input_per_mtok": "0.2", "output_per_mtok": "0.6"}},
            {"name": "hanging-model", "price": {"input_per_mtok": "0", "output_per_mtok": "0"}},
            {"name": "dead-model", "price": {"input_per_mtok": "0", "output_per_mtok": "0"}},
        ],
        replicas=[
            {"id": "remote-kunlun", "model": MODEL, "backend": "openai", "chip": "kunlun-p800", "url": upstream.url + "/v1"},
            {"id": "hanging", "model": "hanging-model", "backend": "openai", "chip": "nvidia-h100",
             "url": f"http://127.0.0.1:{silent.port}/v1", "timeout_s": 0.5},
            {"id": "dead", "model": "dead-model", "backend": "openai", "chip": "nvidia-h100",
             "url": f"http://127.0.0.1:{dead_port}/v1", "connect_timeout_s": 0.5},
        ],
        # no background probes: the hanging replica must meet its first request with a closed breaker
        routing={"policy": "round_robin", "health_interval_s": 3600},
    )
    server = LiveServer(config).start()
    server.run(silent.start)
    yield server, silent
    server.stop()


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    server, _ = gateway
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.create_key("remote"), max_retries=0)


def test_non_stream_passes_through_with_upstream_usage(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=7)
    completion = raw.parse()
    assert raw.headers["x-maas-replica"] == "remote-kunlun"
    assert raw.headers["x-maas-chip"] == "kunlun-p800"
    assert completion.usage.completion_tokens == 7
    assert completion.choices[0].finish_reason == "length"


def test_stream_passes_through_chunk_by_chunk(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=9, seed=11)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=9, seed=11, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 9
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 5


def test_stream_without_include_usage_hides_the_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)


def test_completions_pass_through(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL, prompt="The chip", max_tokens=4)
    assert completion.usage.completion_tokens == 4


def test_upstream_rejection_keeps_its_status_and_param(client: openai.OpenAI) -> None:
    # the upstream (a simulated replica) does not accept vLLM extras: its 400 comes back as ours
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=3, extra_body={"top_k": 3})
    assert info.value.body["param"] == "top_k"


def test_upstream_that_hangs_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="hanging-model", messages=MESSAGES, max_tokens=3)
    assert info.value.status_code == 504
    assert info.value.body["code"] == "upstream_timeout"


def test_upstream_that_refuses_connections_is_503_with_retry_after(gateway, client: openai.OpenAI) -> None:
    server, _ = gateway
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="dead-model", messages=MESSAGES, max_tokens=3)
    assert info.value.status_code == 503
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "dead-model", "messages": MESSAGES},
        headers={"authorization": client.api_key and f"Bearer {client.api_key}"},
    )
    assert response.status_code == 503
    assert "retry-after" in response.headers


class _UsagelessUpstream:
    """An OpenAI-compatible server that never reports usage (some llama.cpp builds, proxies)."""

    ANSWER = "Kunlun cards run large models well"

    def __init__(self) -> None:
        self.port = free_port()

    async def start(self) -> None:
        await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        body = orjson.loads(await reader.readexactly(length))
        if body.get("stream"):
            words = self.ANSWER.split(" ")
            events = b"".join(
                b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": (" " if i else "") + w},
                                                       "finish_reason": None}]}) + b"\n\n"
                for i, w in enumerate(words)
            ) + b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"\n\ndata: [DONE]\n\n"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n" + events)
        else:
            payload = orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": self.ANSWER},
                                                 "finish_reason": "stop"}]})
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                         b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        await writer.drain()
        writer.close()


def test_upstream_without_usage_is_metered_by_tokenizer_and_flagged_estimated(tmp_path) -> None:
    upstream = _UsagelessUpstream()
    config = sim_config(
        tmp_path,
        models=[{"name": "bare-model", "price": {"input_per_mtok": "1", "output_per_mtok": "2"}}],
        replicas=[{"id": "bare", "model": "bare-model", "backend": "openai", "chip": "nvidia-l4",
                   "url": f"http://127.0.0.1:{upstream.port}/v1"}],
    )
    server = LiveServer(config).start()
    try:
        server.run(upstream.start)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.create_key("bare"), max_retries=0)
        plain = client.chat.completions.create(model="bare-model", messages=MESSAGES)
        assert plain.choices[0].message.content == _UsagelessUpstream.ANSWER
        assert plain.usage.completion_tokens > 0 and plain.usage.prompt_tokens > 0
        chunks = list(client.chat.completions.create(
            model="bare-model", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ))
        assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens

        async def rows():
            await server.gateway.db.ledger.flush()
            return await server.gateway.db.store.fetch(
                "SELECT completion_tokens, estimated, status FROM usage_records WHERE tenant = ?", "bare"
            )

        stored = server.run(rows)
        assert len(stored) == 2
        assert all(r[0] == plain.usage.completion_tokens and r[1] == 1 and r[2] == "ok" for r in stored)
    finally:
        server.stop()
