"""A tenant's own API: /v1/account (limits, budgets, what is left) and /v1/keys (manager keys only)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.live_server import ADMIN_KEY, LiveServer, sim_config


def _tenant() -> str:
    return f"self-{secrets.token_hex(4)}"


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _chat(server: LiveServer, key: str, model: str = "default") -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", headers=_auth(key),
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})


def test_a_manager_key_creates_a_restricted_key_whose_secret_is_shown_once(sim_server: LiveServer) -> None:
    manager = sim_server.create_key(_tenant())

    created = httpx.post(f"{sim_server.url}/v1/keys", headers=_auth(manager), json={
        "name": "batch", "models": ["other-model"], "rpm": 5, "budget_usd": "1.25", "budget_period": "day",
    })

    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("sk-maas-") and body["manager"] is False
    assert (body["models"], body["rpm"], body["budget_usd"], body["budget_period"]) == (["other-model"], 5, "1.25", "day")
    listed = httpx.get(f"{sim_server.url}/v1/keys", headers=_auth(manager)).json()["data"]
    assert body["key"] not in str(listed)
    assert [k["current"] for k in listed] == [True, False]
    assert _chat(sim_server, body["key"], "other-model").status_code == 200
    assert _chat(sim_server, body["key"], "default").json()["error"]["code"] == "model_not_allowed"


@pytest.mark.parametrize("restriction", [{"models": ["default"]}, {"rpm": 100}, {"budget_usd": "50"}, {"concurrent": 4}])
def test_a_restricted_key_cannot_list_create_or_revoke_keys(sim_server: LiveServer, restriction: dict) -> None:
    tenant = _tenant()
    manager = sim_server.create_key(tenant)
    restricted = sim_server.create_key(tenant, **restriction)
    victim = httpx.get(f"{sim_server.url}/v1/keys", headers=_auth(manager)).json()["data"][0]["id"]

    answers = [
        httpx.get(f"{sim_server.url}/v1/keys", headers=_auth(restricted)),
        httpx.post(f"{sim_server.url}/v1/keys", headers=_auth(restricted), json={}),
        httpx.delete(f"{sim_server.url}/v1/keys/{victim}", headers=_auth(restricted)),
    ]

    for answer in answers:
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "key_management_not_allowed"
    assert _chat(sim_server, manager).status_code == 200


def test_another_tenants_key_is_invisible_and_cannot_be_revoked(sim_server: LiveServer) -> None:
    ours, theirs = sim_server.create_key(_tenant()), sim_server.create_key(_tenant())
    their_id = httpx.get(f"{sim_server.url}/v1/keys", headers=_auth(theirs)).json()["data"][0]["id"]

    answer = httpx.delete(f"{sim_server.url}/v1/keys/{their_id}", headers=_auth(ours))

    assert answer.status_code == 404
    assert their_id not in httpx.get(f"{sim_server.url}/v1/keys", headers=_auth(ours)).text
    assert _chat(sim_server, theirs).status_code == 200


def test_a_revoked_key_is_refused_at_once_and_revoking_again_is_harmless(sim_server: LiveServer) -> None:
    tenant = _tenant()
    manager = sim_server.create_key(tenant)
    spare = httpx.post(f"{sim_server.url}/v1/keys", headers=_auth(manager), json={"name": "spare"}).json()
    assert spare["manager"] is True  # no restrictions of its own: a manager too

    first = httpx.delete(f"{sim_server.url}/v1/keys/{spare['id']}", headers=_auth(manager))
    again = httpx.delete(f"{sim_server.url}/v1/keys/{spare['id']}", headers=_auth(manager))

    assert first.json() == again.json() == {"id": spare["id"], "revoked": True}
    assert _chat(sim_server, spare["key"]).json()["error"]["code"] == "key_revoked"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"models": ["no-such-model"]}, 404, "model"),
    ({"budget_usd": "-1"}, 400, "budget_usd"),
    ({"budget_usd": "NaN"}, 400, "budget_usd"),
    ({"rpm": -3}, 400, "rpm"),
    ({"models": []}, 400, "models"),
    ({"tenant": "someone-else"}, 400, "tenant"),
    ({"budget_period": "week"}, 400, "budget_period"),
])
def test_a_bad_key_request_is_a_clear_error(sim_server: LiveServer, body: dict, status: int, param: str) -> None:
    manager = sim_server.create_key(_tenant())

    answer = httpx.post(f"{sim_server.url}/v1/keys", headers=_auth(manager), json=body)

    assert answer.status_code == status
    assert answer.json()["error"]["param"] == param


def test_the_account_shows_effective_limits_and_what_is_left_of_each_budget(sim_server: LiveServer) -> None:
    tenant = _tenant()
    httpx.put(f"{sim_server.url}/admin/tenants/{tenant}", headers=_auth(ADMIN_KEY),
              json={"rpm": 900, "budget_usd": "20", "budget_period": "total"}).raise_for_status()
    key = sim_server.create_key(tenant, budget_usd="3", budget_period="month", tpm=5000)
    for _ in range(2):
        assert _chat(sim_server, key).status_code == 200
    charged = sum(Decimal(r["price_usd"]) for r in httpx.get(f"{sim_server.url}/v1/usage", headers=_auth(key)).json()["data"])

    account = httpx.get(f"{sim_server.url}/v1/account", headers=_auth(key)).json()

    assert account["tenant"] == tenant and account["key"]["manager"] is False
    assert account["limits"]["key"]["tpm"] == 5000 and account["limits"]["tenant"]["rpm"] == 900
    key_budget, tenant_budget = account["budgets"]
    assert (key_budget["scope"], tenant_budget["scope"]) == ("key", "tenant")
    assert Decimal(key_budget["spent_usd"]) == Decimal(tenant_budget["spent_usd"]) == charged > 0
    assert Decimal(key_budget["left_usd"]) == Decimal(3) - charged
    assert Decimal(tenant_budget["left_usd"]) == Decimal(20) - charged
    assert tenant_budget["resets_at"] is None and key_budget["resets_at"] > 0
    assert "compute_cost_usd" not in str(account)


@pytest.fixture(scope="module")
def anonymous_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    config = sim_config(tmp_path_factory.mktemp("anonymous"), server={"allow_anonymous": True})
    server = LiveServer(config).start()
    yield server
    server.stop()


def test_anonymous_access_sees_its_account_but_manages_no_keys(anonymous_server: LiveServer) -> None:
    account = httpx.get(f"{anonymous_server.url}/v1/account")
    assert account.status_code == 200 and account.json()["key"]["manager"] is False

    for answer in (httpx.get(f"{anonymous_server.url}/v1/keys"),
                   httpx.post(f"{anonymous_server.url}/v1/keys", json={"name": "mine"})):
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "key_management_not_allowed"
