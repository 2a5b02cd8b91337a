"""An upstream's failures reach tenants as our own messages, and its Retry-After never breaks the gateway."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from backends.upstream_errors import MAX_RETRY_AFTER_S, retry_after_s
from tests.fakes.scripted_upstream import Script, ScriptedUpstream
from tests.live_server import LiveServer, sim_config

SECRET = "/srv/upstream/internal-build-7f3a (tenant bob asked about payroll)"
SCENARIOS = {
    "rejecting": Script(
        400, body=orjson.dumps({"error": {"message": f"bad temperature at {SECRET}", "param": "temperature"}})
    ),
    "failing": Script(500, body=f"Traceback (most recent call last): {SECRET}".encode()),
    "overflowing": Script(
        400, body=orjson.dumps({"error": {"message": f"This model's maximum context length is 2048 tokens. {SECRET}"}})
    ),
    "busy-forever": Script(429, headers={"retry-after": "inf"}, body=b'{"error": "slow down"}'),
    "down-until-a-date": Script(503, headers={"retry-after": "nan"}, body=SECRET.encode()),
    # a good answer behind 100 kB of headers: only the header bound refuses it
    "flooding-headers": Script(200, headers={f"x-flood-{i}": "f" * 1000 for i in range(100)}, body=orjson.dumps({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    })),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[LiveServer]:
    upstreams = {name: ScriptedUpstream(name).start() for name in SCENARIOS}
    for name, upstream in upstreams.items():
        upstream.script = SCENARIOS[name]
    config = sim_config(
        tmp_path_factory.mktemp("upstream-errors"),
        models=[{"name": name, "price": {"input_per_mtok": "1", "output_per_mtok": "1"}} for name in SCENARIOS],
        replicas=[
            {"id": f"{name}-0", "model": name, "backend": "openai", "chip": "nvidia-h100", "url": upstream.url}
            for name, upstream in upstreams.items()
        ],
        routing={"policy": "round_robin", "health_interval_s": 3600, "breaker_failures": 100, "max_attempts": 1},
    )
    server = LiveServer(config).start()
    yield server
    server.stop()
    for upstream in upstreams.values():
        upstream.stop()


def _chat(server: LiveServer, model: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {server.create_key('upstream-errors')}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=30,
    )


def test_upstream_rejection_is_told_in_our_words_and_logged_for_the_operator(
    gateway: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="maas.upstream"):
        response = _chat(gateway, "rejecting")
    assert response.status_code == 400
    error = response.json()["error"]
    assert SECRET not in response.text and "bad temperature" not in response.text
    assert error["param"] == "temperature"
    assert "rejected the request" in error["message"]
    assert any(SECRET in record.getMessage() for record in caplog.records)


def test_upstream_server_error_body_never_reaches_the_tenant(gateway: LiveServer) -> None:
    response = _chat(gateway, "failing")
    assert response.status_code == 503
    assert SECRET not in response.text and "Traceback" not in response.text
    assert response.json()["error"]["code"] == "replica_unavailable"


def test_upstream_context_overflow_is_classified_without_its_text(gateway: LiveServer) -> None:
    response = _chat(gateway, "overflowing")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert SECRET not in response.text and "2048" not in response.text


@pytest.mark.parametrize("model", ["busy-forever", "down-until-a-date"])
def test_unusable_upstream_retry_after_is_a_503_not_a_500(gateway: LiveServer, model: str) -> None:
    response = _chat(gateway, model)
    assert response.status_code == 503, response.text
    assert 1 <= int(response.headers["retry-after"]) <= MAX_RETRY_AFTER_S
    assert SECRET not in response.text


def test_an_upstream_flooding_headers_is_dropped_not_buffered(gateway: LiveServer) -> None:
    response = _chat(gateway, "flooding-headers")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "replica_unavailable"


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("99999999", MAX_RETRY_AFTER_S),
        ("inf", None),
        ("-inf", None),
        ("nan", None),
        ("1e999", None),
        ("soon", None),
        ("", None),
        (format_datetime(datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=30), usegmt=True), 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
    ],
)
def test_retry_after_is_finite_and_capped_or_ignored(header: str, seconds: float | None) -> None:
    assert retry_after_s(header, now=NOW) == seconds
