"""Shared fixtures: a live gateway over a simulated pool, keys, SDK clients."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.live_server import ADMIN_KEY, LiveServer, sim_config
from tests.surfaces import surfaces_config


@pytest.fixture(scope="session")
def sim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(sim_config(tmp_path_factory.mktemp("sim"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def surfaces_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The Responses, Messages and embeddings surfaces over a simulated pool (chat + embedding model)."""
    server = LiveServer(surfaces_config(tmp_path_factory.mktemp("surfaces"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api_key(sim_server: LiveServer) -> str:
    return sim_server.create_key("acme")


@pytest.fixture
def client(sim_server: LiveServer, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim_server.url + "/v1", api_key=api_key, max_retries=0)


@pytest.fixture
def aclient(sim_server: LiveServer, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim_server.url + "/v1", api_key=api_key, max_retries=0)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}
