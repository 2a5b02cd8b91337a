"""The `openai` backend against a second process speaking the OpenAI protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
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
