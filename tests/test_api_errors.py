"""Every error answers in OpenAI's shape with the right status; nothing produces a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.live_server import LiveServer

MODEL = "llama-3.1-8b-instruct"
MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, *, code: str | None = None, type: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    if type is not None:
        assert body["error"]["type"] == type
    assert "Traceback" not in response.text
    assert "detail" not in body
    return body["error"]


@pytest.fixture
def post(sim_server: LiveServer, api_key: str):
    def send(body: bytes | dict, *, key: str | None = api_key, path: str = "/v1/chat/completions", headers=None):
        h = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        if isinstance(body, dict):
            return httpx.post(sim_server.url + path, json=body, headers=h, timeout=30)
        return httpx.post(sim_server.url + path, content=body, headers=h, timeout=30)

    return send


def test_malformed_json_is_400(post) -> None:
    err = assert_openai_error(post(b'{"model": "x", "messages": ['), 400, code="invalid_json")
    assert err["type"] == "invalid_request_error"


def test_body_that_is_not_an_object_is_400(post) -> None:
    assert_openai_error(post(b"[1, 2, 3]"), 400)
    assert_openai_error(post(b""), 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": MESSAGES, "temperature": 7}, "temperature"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": MESSAGES, "n": "two"}, "n"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": MODEL, "messages": MESSAGES, "stream_options": {"include_usage": "maybe"}}, "stream_options.include_usage"),
    ],
)
def test_schema_violation_is_400_naming_the_param(post, body: dict, param: str) -> None:
    err = assert_openai_error(post(body), 400, type="invalid_request_error")
    assert err["param"] == param


def test_routing_preference_that_is_malformed_is_400(post) -> None:
    err = assert_openai_error(
        post({"model": MODEL, "messages": MESSAGES, "routing": {"prefer": "magic"}}), 400
    )
    assert err["param"].startswith("routing")


def test_routing_preference_no_replica_can_meet_is_refused(post) -> None:
    response = post({"model": MODEL, "messages": MESSAGES, "routing": {"chips": ["nvidia-b200"]}})
    assert response.status_code in (400, 503)
    assert_openai_error(response, response.status_code)


def test_missing_key_is_401(post) -> None:
    assert_openai_error(post({"model": MODEL, "messages": MESSAGES}, key=None), 401, code="invalid_api_key")


def test_wrong_key_is_401_via_sdk(sim_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=sim_server.url + "/v1", api_key="sk-maas-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert info.value.body["code"] == "invalid_api_key"


def test_revoked_key_is_403(sim_server: LiveServer, admin_headers, post) -> None:
    created = httpx.post(sim_server.url + "/admin/keys", json={"tenant": "t-revoke"}, headers=admin_headers).json()
    assert post({"model": MODEL, "messages": MESSAGES, "max_tokens": 1}, key=created["key"]).status_code == 200
    assert httpx.delete(sim_server.url + f"/admin/keys/{created['id']}", headers=admin_headers).status_code == 200
    assert_openai_error(post({"model": MODEL, "messages": MESSAGES}, key=created["key"]), 403, code="key_revoked")


def test_model_not_allowed_for_key_is_403(sim_server: LiveServer, post) -> None:
    limited = sim_server.create_key("t-limited", models=("other-model",))
    assert post({"model": "other-model", "messages": MESSAGES, "max_tokens": 1}, key=limited).status_code == 200
    assert_openai_error(post({"model": MODEL, "messages": MESSAGES}, key=limited), 403, code="model_not_allowed")


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    assert info.value.body["param"] == "model"


def test_body_over_the_limit_is_413(post, sim_server: LiveServer) -> None:
    limit = sim_server.config.server.max_body_bytes
    huge = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (limit + 10)}]}
    assert_openai_error(post(huge), 413, code="request_too_large")


def test_all_replicas_down_is_503_with_retry_after_at_once(sim_server: LiveServer, post) -> None:
    replica = sim_server.gateway.registry.get("other-0")

    async def kill():
        replica.backend.kill()

    async def revive():
        replica.backend.revive()
        replica.breaker.record_success()

    sim_server.run(kill)
    try:
        for _ in range(3):
            response = post({"model": "other-model", "messages": MESSAGES, "max_tokens": 2})
            err = assert_openai_error(response, 503, type="service_unavailable_error")
            assert err["code"]
            assert int(response.headers["retry-after"]) >= 1
    finally:
        sim_server.run(revive)


def test_unknown_path_and_method_are_openai_shaped(sim_server: LiveServer, api_key: str) -> None:
    h = {"authorization": f"Bearer {api_key}"}
    assert_openai_error(httpx.get(sim_server.url + "/v1/nothing", headers=h), 404)
    assert_openai_error(httpx.get(sim_server.url + "/v1/chat/completions", headers=h), 405)


def test_admin_routes_need_the_admin_key(sim_server: LiveServer, api_key: str) -> None:
    response = httpx.get(sim_server.url + "/admin/keys", headers={"authorization": f"Bearer {api_key}"})
    assert_openai_error(response, 401, code="invalid_admin_key")
    response = httpx.post(sim_server.url + "/admin/keys", json={"tenant": ""}, headers={"authorization": "Bearer x"})
    assert response.status_code == 401


def test_admin_validation_errors_are_400_openai_shaped(sim_server: LiveServer, admin_headers) -> None:
    response = httpx.post(sim_server.url + "/admin/keys", json={"tenant": "a", "rpm": -1}, headers=admin_headers)
    err = assert_openai_error(response, 400)
    assert err["param"] == "rpm"
    response = httpx.post(sim_server.url + "/admin/keys", content=b"{nope", headers={**admin_headers, "content-type": "application/json"})
    assert_openai_error(response, 400)


def test_rate_limits_answer_429_naming_the_limit_with_openai_headers(sim_server: LiveServer, post) -> None:
    one_per_minute = sim_server.create_key("t-rpm", rpm=1)
    first = post({"model": MODEL, "messages": MESSAGES, "max_tokens": 2}, key=one_per_minute)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    second = post({"model": MODEL, "messages": MESSAGES, "max_tokens": 2}, key=one_per_minute)
    assert_openai_error(second, 429, code="rate_limit_exceeded", type="requests")
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert second.headers["x-ratelimit-reset-requests"]

    few_tokens = sim_server.create_key("t-tpm", tpm=50)
    refused = post({"model": MODEL, "messages": MESSAGES, "max_tokens": 100}, key=few_tokens)
    assert_openai_error(refused, 429, code="rate_limit_exceeded", type="tokens")
    assert refused.headers["x-ratelimit-limit-tokens"] == "50"


def test_every_key_has_a_default_concurrency_limit(sim_server) -> None:
    from billing.settings import DEFAULT_KEY_CONCURRENCY, LimitsConfig

    assert LimitsConfig().per_key.concurrent == DEFAULT_KEY_CONCURRENCY
    assert sim_server.config.limits.per_key.concurrent == DEFAULT_KEY_CONCURRENCY


def test_too_many_messages_are_refused_before_they_are_validated(client) -> None:
    import openai
    import pytest

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "a"}] * 3000, max_tokens=1)
    assert refused.value.body["param"] == "messages" and "2048" in refused.value.body["message"]
