"""CORS: none by default; an allow-list when the operator configures one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.live_server import LiveServer, sim_config

ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    live = LiveServer(sim_config(tmp_path_factory.mktemp("cors"), server={"cors_origins": [ALLOWED]})).start()
    yield live
    live.stop()


def test_no_cross_origin_access_by_default(sim_server: LiveServer) -> None:
    answer = httpx.get(sim_server.url + "/healthz", headers={"origin": ALLOWED})
    assert "access-control-allow-origin" not in answer.headers
    preflight = httpx.options(sim_server.url + "/v1/chat/completions",
                              headers={"origin": ALLOWED, "access-control-request-method": "POST"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_an_allowed_origin_gets_a_preflight_answer_and_readable_headers(server: LiveServer) -> None:
    preflight = httpx.options(server.url + "/v1/chat/completions",
                              headers={"origin": ALLOWED, "access-control-request-method": "POST",
                                       "access-control-request-headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    key = server.create_key("cors")
    answer = httpx.post(server.url + "/v1/chat/completions", headers={"origin": ALLOWED, "authorization": f"Bearer {key}"},
                        json={"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-maas-cost-usd" in answer.headers["access-control-expose-headers"]


def test_an_origin_not_on_the_list_gets_nothing(server: LiveServer) -> None:
    answer = httpx.get(server.url + "/healthz", headers={"origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in answer.headers
