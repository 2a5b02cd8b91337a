"""The admin surface: a strong key from the environment only, throttled guessing, registrations kept
to what the config permits, numbers within what the database holds, updates applied whole."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
import yaml

from gateway.admin_throttle import AdminAuthThrottle
from gateway.cli_config import default_config_text
from gateway.config import ConfigError, parse_config
from tests.fakes.scripted_upstream import ScriptedUpstream
from tests.live_server import ADMIN_KEY, LiveServer, sim_config

MODEL = "llama-3.1-8b-instruct"
UPSTREAM_KEY_ENV = "HARDENING_TEST_UPSTREAM_KEY"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream(MODEL).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, upstream: ScriptedUpstream) -> Iterator[LiveServer]:
    config = sim_config(tmp_path_factory.mktemp("admin-hardening"), admin={"upstream_key_envs": [UPSTREAM_KEY_ENV]})
    config.metrics_token = "metrics-token-for-the-scraper"
    live = LiveServer(config).start()
    yield live
    live.stop()


@pytest.fixture
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as client:
        yield client


# -- the admin key ------------------------------------------------------------------------------

def _default() -> dict:
    return yaml.safe_load(default_config_text())


def test_a_short_admin_key_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="MAAS_ADMIN_KEY.*at least 32"):
        parse_config(_default(), env={"MAAS_ADMIN_KEY": "admin-secret"})
    assert parse_config(_default(), env={"MAAS_ADMIN_KEY": "k" * 32}).admin_key == "k" * 32


@pytest.mark.parametrize("field", ["admin_key", "metrics_token"])
def test_secrets_in_the_config_file_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=f"{field}.*environment"):
        parse_config({**_default(), field: "x" * 40}, env={})


def test_secrets_are_never_dumped_with_the_config() -> None:
    config = parse_config(_default(), env={"MAAS_ADMIN_KEY": "k" * 40, "MAAS_METRICS_TOKEN": "m" * 20})
    dumped = str(config.model_dump(mode="json")) + repr(config)
    assert "k" * 40 not in dumped and "m" * 20 not in dumped
    assert config.metrics_token == "m" * 20


# -- /metrics ------------------------------------------------------------------------------------

def test_metrics_require_the_metrics_token_when_one_is_set(server: LiveServer) -> None:
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    scraped = httpx.get(server.url + "/metrics", headers={"authorization": "Bearer metrics-token-for-the-scraper"})
    assert scraped.status_code == 200 and "maas_" in scraped.text


# -- registrations -------------------------------------------------------------------------------

def _spec(upstream: ScriptedUpstream, replica_id: str, **changes: object) -> dict:
    spec = {"id": replica_id, "model": MODEL, "backend": "openai", "chip": "nvidia-h100", "url": upstream.url}
    return {**spec, **changes}


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("url", "http://169.254.169.254/latest/meta-data/"),
        ("url", "http://[::ffff:169.254.169.254]/v1"),
        ("url", "http://[fd00:ec2::254]/v1"),
        ("url", "http://100.100.100.200/v1"),
        ("url", "http://0.0.0.0:8000/v1"),
        ("url", "http://[fe80::1]:8000/v1"),
        ("url", "http://user:pass@127.0.0.1:8000/v1"),
        ("url", "file:///etc/passwd"),
        ("metrics_url", "http://169.254.169.254/metrics"),
    ],
)
def test_registration_to_metadata_and_link_local_addresses_is_refused(
    admin: httpx.Client, upstream: ScriptedUpstream, field: str, url: str
) -> None:
    response = admin.post("/admin/replicas", json=_spec(upstream, "sneaky", **{field: url}))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field
    assert all(r["id"] != "sneaky" for r in admin.get("/admin/replicas").json()["data"])


def test_registration_cannot_send_the_gateways_own_secrets_upstream(
    admin: httpx.Client, upstream: ScriptedUpstream
) -> None:
    seen = len(upstream.authorizations)
    for name in ("MAAS_ADMIN_KEY", "HOME", "AWS_SECRET_ACCESS_KEY"):
        response = admin.post("/admin/replicas", json=_spec(upstream, "leaky", api_key_env=name))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "api_key_env_not_allowed"
    assert len(upstream.authorizations) == seen  # nothing was sent anywhere


def test_registration_may_use_an_upstream_key_the_config_declares(
    admin: httpx.Client, server: LiveServer, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, "upstream-secret")
    registered = admin.post("/admin/replicas", json=_spec(upstream, "declared", api_key_env=UPSTREAM_KEY_ENV))
    assert registered.status_code == 201, registered.text

    async def probe() -> bool:
        replica = server.gateway.registry.get("declared")
        assert replica is not None
        return await replica.backend.health()

    assert server.run(probe)
    assert upstream.authorizations[-1] == "Bearer upstream-secret"
    assert admin.delete("/admin/replicas/declared", params={"timeout_s": 1}).status_code == 200


def test_config_cannot_name_the_admin_key_as_an_upstream_key() -> None:
    data = _default()
    data["replicas"].append({"id": "up", "model": data["models"][0]["name"], "backend": "openai", "chip": "nvidia-l4",
                             "url": "http://127.0.0.1:9/v1", "api_key_env": "MAAS_ADMIN_KEY"})
    with pytest.raises(ConfigError, match="api_key_env"):
        parse_config(data, env={})


def test_registration_with_a_dangerous_engine_environment_is_refused(admin: httpx.Client) -> None:
    before = dict(os.environ)
    spec = {"id": "preload", "model": MODEL, "backend": "vllm", "chip": "cpu-avx2",
            "engine": {"env": {"LD_PRELOAD": "/tmp/evil.so"}}}
    response = admin.post("/admin/replicas", json=spec)
    assert response.status_code == 400
    assert "LD_PRELOAD" in response.json()["error"]["message"]
    assert dict(os.environ) == before


# -- numbers and atomic updates --------------------------------------------------------------------

@pytest.mark.parametrize(
    "body",
    [
        {"rpm": 2**63}, {"tpm": 2**64}, {"concurrent": -1}, {"budget_usd": "9300000000"},
        {"budget_usd": "1e400"}, {"budget_usd": "NaN"}, {"budget_usd": "Infinity"},
    ],
)
def test_admin_numbers_beyond_the_database_are_400(admin: httpx.Client, body: dict) -> None:
    created = admin.post("/admin/keys", json={"tenant": "numbers", **body})
    assert created.status_code == 400, created.text
    assert created.json()["error"]["param"] == next(iter(body))
    assert admin.put("/admin/tenants/numbers", json=body).status_code == 400


def test_the_largest_values_the_database_holds_are_accepted(admin: httpx.Client) -> None:
    body = {"rpm": 2**63 - 1, "budget_usd": "9223372036.854775807", "budget_period": "total"}
    assert admin.post("/admin/keys", json={"tenant": "largest", **body}).status_code == 201
    saved = admin.put("/admin/tenants/largest", json=body)
    assert saved.status_code == 200
    assert admin.get("/admin/tenants/largest").json()["budget_usd"] == "9223372036.854775807"


def test_a_refused_tenant_update_changes_nothing(admin: httpx.Client) -> None:
    assert admin.put("/admin/tenants/atomic", json={"rpm": 7, "budget_usd": "3"}).status_code == 200
    refused = admin.put("/admin/tenants/atomic", json={"rpm": 99, "budget_usd": "1e12"})
    assert refused.status_code == 400
    tenant = admin.get("/admin/tenants/atomic").json()
    assert (tenant["rpm"], Decimal(tenant["budget_usd"])) == (7, Decimal(3))


# -- tenant usage ---------------------------------------------------------------------------------

def test_tenants_see_what_they_are_charged_never_the_operators_costs(server: LiveServer, admin: httpx.Client) -> None:
    secret = server.create_key("charged-only")
    headers = {"authorization": f"Bearer {secret}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    assert httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=30).status_code == 200
    own = httpx.get(server.url + "/v1/usage", headers=headers).json()["data"]
    assert own and all("price_usd" in row for row in own)
    assert not any({"compute_cost_usd", "margin_usd"} & set(row) for row in own)
    own_csv = httpx.get(server.url + "/v1/usage", params={"format": "csv"}, headers=headers).text
    header = next(csv.reader(io.StringIO(own_csv)))
    assert "price_usd" in header and "compute_cost_usd" not in header and "margin_usd" not in header
    operator = admin.get("/admin/usage", params={"tenant": "charged-only"}).json()["data"]
    assert {"compute_cost_usd", "margin_usd"} <= set(operator[0])


# -- guessing the admin key -----------------------------------------------------------------------

def test_lockouts_double_after_the_free_failures_and_are_capped() -> None:
    now = [0.0]
    throttle = AdminAuthThrottle(free_failures=2, base_lockout_s=1, max_lockout_s=8, clock=lambda: now[0])
    lockouts = [throttle.failed("10.0.0.1")[1] for _ in range(8)]
    assert lockouts == [0, 0, 1, 2, 4, 8, 8, 8]
    assert throttle.retry_after("10.0.0.1") == 8 and throttle.retry_after("10.0.0.2") is None
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None


def test_failures_are_forgotten_after_a_quiet_period_and_memory_is_bounded() -> None:
    now = [0.0]
    throttle = AdminAuthThrottle(free_failures=1, forget_after_s=60, max_addresses=3, clock=lambda: now[0])
    throttle.failed("a")
    now[0] = 61.0
    assert throttle.failed("a") == (1, 0)  # the old failure no longer counts
    for address in ("b", "c", "d", "e"):
        throttle.failed(address)
    assert throttle.failed("a") == (1, 0)  # evicted as the least recent of more than 3 addresses

def test_wrong_admin_keys_are_throttled_and_logged_without_the_key(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    throttle = server.gateway.auth.throttle = AdminAuthThrottle(clock=lambda: now[0])
    statuses = []
    with caplog.at_level(logging.WARNING, logger="maas.auth"):
        for i in range(8):
            response = httpx.get(server.url + "/admin/keys", headers={"authorization": f"Bearer guess-number-{i}"})
            statuses.append(response.status_code)
    free = throttle.free_failures
    assert statuses == [401] * (free + 1) + [429] * (8 - free - 1)
    locked = httpx.get(server.url + "/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) == 1
    now[0] += 1.0  # the first lockout is over: the right key works again and clears the address
    assert httpx.get(server.url + "/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    assert throttle.retry_after("127.0.0.1") is None
    failures = [r.getMessage() for r in caplog.records if "admin authentication failed" in r.getMessage()]
    assert len(failures) == free + 1  # each compared guess is logged; locked-out ones are not compared
    assert "127.0.0.1" in failures[0]
    assert not any("guess-number" in message for message in failures)
