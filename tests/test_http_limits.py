"""The HTTP edge's limits, over raw sockets against a real `maas serve`: header size, slow
headers and bodies, connection cap, hostile JSON."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import GatewayProcess, simulated_replica_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("limits")
    config = simulated_replica_config("nvidia-l4", ledger=f"sqlite:///{tmp}/ledger.db")
    config["server"].update(max_header_bytes=8192, header_timeout_s=1.0, body_timeout_s=1.0, max_connections=8)
    proc = GatewayProcess(config, tmp).start()
    yield proc
    proc.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_headers_are_refused_with_431_before_the_app_sees_them(gateway: GatewayProcess) -> None:
    sock = connect(gateway)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-request-id: " + b"a" * 20_000 + b"\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 431")
    # many small headers count together
    sock = connect(gateway)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-%d: %s\r\n" % (i, b"b" * 60) for i in range(200))
                 + b"\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 431")


def test_headers_that_never_finish_are_cut_at_the_header_timeout(gateway: GatewayProcess) -> None:
    sock = connect(gateway)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
    answer = read_all(sock)  # the server closes the connection
    assert answer.startswith(b"HTTP/1.1 408") and 0.8 < time.monotonic() - started < 5


def test_a_body_that_never_finishes_is_cut_at_the_body_timeout(gateway: GatewayProcess) -> None:
    sock = connect(gateway)
    started = time.monotonic()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"authorization: Bearer EMPTY\r\ncontent-length: 1000\r\n\r\n{\"model\": ")
    read_all(sock)
    assert 0.8 < time.monotonic() - started < 5


@pytest.fixture(scope="module")
def capped(tmp_path_factory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("capped")
    config = simulated_replica_config("nvidia-l4", ledger=f"sqlite:///{tmp}/ledger.db")
    config["server"].update(max_connections=8, header_timeout_s=30)
    proc = GatewayProcess(config, tmp).start()
    yield proc
    proc.stop()


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(gateway: GatewayProcess) -> None:
    sock = connect(gateway)
    started = time.monotonic()
    assert read_all(sock).startswith(b"HTTP/1.1 408") and 0.8 < time.monotonic() - started < 5


def test_connections_beyond_the_cap_get_503(capped: GatewayProcess) -> None:
    gateway = capped
    held = [connect(gateway) for _ in range(12)]  # idle: they count against the cap
    try:
        statuses = set()
        for _ in range(3):
            try:
                statuses.add(httpx.get(gateway.url + "/healthz", timeout=5).status_code)
            except httpx.HTTPError:
                statuses.add("refused")
        assert 503 in statuses
    finally:
        for sock in held:
            sock.close()
    # the cap frees as connections go
    deadline = time.monotonic() + 10
    while httpx.get(gateway.url + "/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline


def test_content_nested_a_thousand_deep_is_a_400_not_a_500(gateway: GatewayProcess) -> None:
    deep = b"[" * 1000 + b'"deep"' + b"]" * 1000
    body = b'{"model": "llama-3.1-8b-instruct", "messages": [{"role": "user", "content": ' + deep + b"}]}"
    answer = httpx.post(gateway.url + "/v1/chat/completions", content=body,
                        headers={"content-type": "application/json", "authorization": "Bearer EMPTY"})
    assert answer.status_code == 400, answer.text


def test_text_plain_bodies_are_refused_with_415(gateway: GatewayProcess) -> None:
    answer = httpx.post(gateway.url + "/v1/chat/completions", content=b"{}",
                        headers={"content-type": "text/plain", "authorization": "Bearer EMPTY"})
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_media_type"
