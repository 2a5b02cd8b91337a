"""The operator's console in a real browser: fleet, replicas, scorecard, routing, money, tenants."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.console_page import ConsolePage, money_text
from tests.console.traffic import chat, get
from tests.fakes.fleet_status import fleet_status
from tests.live_server import ADMIN_KEY, LiveServer

#: live views poll every 3-5 s; an assertion waits for the next refresh, never a fixed time
LIVE_TIMEOUT_MS = 15_000


@pytest.fixture
def operator(console: ConsolePage) -> ConsolePage:
    return console.open().sign_in(ADMIN_KEY)


@pytest.fixture
def tenant_key(console_server: LiveServer) -> str:
    return console_server.create_key(f"ops-{secrets.token_hex(3)}")


@pytest.fixture
def undrain_afterwards(console_server: LiveServer) -> Iterator[None]:
    yield
    for replica in get(console_server.url, "/admin/replicas", ADMIN_KEY).json()["data"]:
        if replica["state"] == "draining":
            httpx.post(f"{console_server.url}/admin/replicas/{replica['id']}/undrain",
                       headers={"authorization": f"Bearer {ADMIN_KEY}"})


def _replica_row(operator: ConsolePage, replica_id: str):
    return operator.page.locator("[data-model] tbody tr", has=operator.page.locator("code", has_text=replica_id))


def test_operator_drains_a_replica_and_sees_it_drained(
    operator: ConsolePage, console_server: LiveServer, tenant_key: str, undrain_afterwards: None
) -> None:
    page = operator.page
    row = _replica_row(operator, "kunlun-0")
    expect(row).to_contain_text("active")

    page.get_by_role("button", name="Drain kunlun-0").click()

    expect(row).to_contain_text("draining (no new requests)")
    expect(row).to_contain_text("no")  # takes traffic: no
    (state,) = [r["state"] for r in get(console_server.url, "/admin/replicas", ADMIN_KEY).json()["data"]
                if r["id"] == "kunlun-0"]
    assert state == "draining"
    served = {chat(console_server.url, tenant_key).headers["x-maas-replica"] for _ in range(6)}
    assert "kunlun-0" not in served

    page.get_by_role("button", name="Undrain kunlun-0").click()

    expect(row).to_contain_text("active")
    expect(page.get_by_role("button", name="Drain kunlun-0")).to_be_focused()


def test_operator_sees_replicas_and_scorecard_update_after_traffic(
    operator: ConsolePage, console_server: LiveServer, tenant_key: str
) -> None:
    page = operator.page
    requests_cell = _replica_row(operator, "other-0").locator("td").nth(8)
    before = int(requests_cell.inner_text().replace(",", ""))

    for _ in range(3):
        chat(console_server.url, tenant_key, "other-model")

    expect(requests_cell).to_have_text(str(before + 3), timeout=LIVE_TIMEOUT_MS)

    operator.go("Chip scorecard")
    a100 = page.locator("#scorecard-table tbody tr", has_text="nvidia-a100")
    scored = int(a100.locator("td").nth(1).inner_text().replace(",", ""))
    chat(console_server.url, tenant_key, "other-model")
    expect(a100.locator("td").nth(1)).to_have_text(str(scored + 1), timeout=LIVE_TIMEOUT_MS)


def test_operator_sees_where_requests_were_routed_and_why(
    operator: ConsolePage, console_server: LiveServer, tenant_key: str
) -> None:
    operator.go("Routing decisions")
    served = chat(console_server.url, tenant_key, "other-model").headers["x-maas-replica"]

    latest = operator.page.locator("#decision-log tbody tr").first
    expect(latest).to_contain_text(served, timeout=LIVE_TIMEOUT_MS)
    expect(latest).to_contain_text("other-model")
    expect(latest).to_contain_text("chosen")
    (decision, *_) = get(console_server.url, "/admin/routing/decisions", ADMIN_KEY, model="other-model").json()["data"]
    expect(latest).to_contain_text(decision["reason"])


def test_operator_sees_the_fleets_cost_per_hour_and_its_pools(operator: ConsolePage, console_server: LiveServer) -> None:
    """Reads GET /admin/fleet (the fleet planner's status)."""
    fleet = get(console_server.url, "/admin/fleet", ADMIN_KEY)
    assert fleet.status_code == 200, "GET /admin/fleet is not served by this gateway"
    body = fleet.json()

    costs = operator.page.locator("#fleet-costs")
    expect(costs.locator("[data-field=cost-now]")).to_have_text(f"{body['cost_per_hour_now']} {body['currency']}")
    expect(costs.locator("[data-field=cost-all-on]")).to_have_text(f"{body['cost_per_hour_all_on']} {body['currency']}")
    for model in body["models"]:
        section = operator.page.locator(f"[data-model='{model['model']}']")
        for pool in model["pools"]:
            expect(section.get_by_role("table", name=f"Pools of {model['model']}")).to_contain_text(pool["pool"])


def test_fleet_view_shows_the_documented_fleet_status(console: ConsolePage) -> None:
    """The view against the documented shape of GET /admin/fleet, answered by the browser itself."""
    status = fleet_status()
    console.page.route("**/admin/fleet", lambda route: route.fulfill(json=status))
    console.open().sign_in(ADMIN_KEY)

    expect(console.page.locator("[data-field=cost-now]")).to_have_text("12.34 USD")
    expect(console.page.locator("[data-field=cost-all-on]")).to_have_text("40.00 USD")
    pools = {row["Pool"]: row for row in console.rows("pools-llama-3.1-8b-instruct")}
    assert pools["l4"]["Chip"] == "nvidia-l4 simulated"
    assert pools["l4"]["Running / desired"] == "1 / 2"
    assert pools["l4"]["Starting / draining"] == "1 / 0"
    assert pools["h100"]["Standby / desired"] == "1 / 1"
    assert pools["h100"]["$/hour each"] == "3.99 USD"
    assert pools["l4"]["Cold start"] == "60 s (measured 42.5 s)"
    expect(console.page.locator("li[data-pool=l4]")).to_have_text("l4: cheapest per request at this load")
    section = console.page.locator("[data-model='llama-3.1-8b-instruct']")
    expect(section).to_contain_text("forecast 11.2 req/s")
    expect(section).to_contain_text("forecast 11.2 req/s needs 3 replicas; l4 is cheapest")
    (event,) = console.rows("fleet-events")
    assert (event["Replica"], event["Event"], event["Why"]) == ("l4-1", "starting", "forecast above capacity")


def test_fleet_view_before_the_planners_first_plan(console: ConsolePage) -> None:
    status = fleet_status()
    (model,) = status["models"]
    del model["load"], model["forecast_rps"]
    for pool in model["pools"]:
        pool.update(desired=None, desired_standby=None, capacity_rps_per_replica=None, reason=None)
    console.page.route("**/admin/fleet", lambda route: route.fulfill(json=status))
    console.open().sign_in(ADMIN_KEY)

    expect(console.page.locator("[data-model='llama-3.1-8b-instruct']")).to_contain_text("No plan for this model yet.")
    pools = {row["Pool"]: row for row in console.rows("pools-llama-3.1-8b-instruct")}
    assert (pools["l4"]["Running / desired"], pools["l4"]["Capacity each"]) == ("1 / –", "–")


def test_operator_sees_revenue_compute_cost_and_margin_by_tenant(
    operator: ConsolePage, console_server: LiveServer, tenant_key: str
) -> None:
    chat(console_server.url, tenant_key)
    tenant = get(console_server.url, "/v1/account", tenant_key).json()["tenant"]
    (expected,) = [r for r in get(console_server.url, "/admin/usage", ADMIN_KEY, group_by="tenant").json()["data"]
                   if r["tenant"] == tenant]

    operator.go("Revenue and margin")
    rows = {row["Tenant"]: row for row in operator.rows("revenue-table")}

    assert rows[tenant]["Revenue"] == money_text(expected["price_usd"])
    assert rows[tenant]["Compute cost"] == money_text(expected["compute_cost_usd"])
    assert rows[tenant]["Margin"] == money_text(expected["margin_usd"])

    operator.page.get_by_label("By", exact=True).select_option("chip")
    expect(operator.table("revenue-table").locator("thead th").first).to_have_text("Chip")


def test_operator_sets_a_tenants_budget_and_creates_a_key_for_it(
    operator: ConsolePage, console_server: LiveServer
) -> None:
    tenant = f"new-{secrets.token_hex(3)}"
    page = operator.page
    operator.go("Tenants and keys")

    page.get_by_label("Tenant", exact=True).fill(tenant)
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("[data-secret]").inner_text()
    assert re.fullmatch(r"sk-maas-\w{40}", secret)
    page.get_by_role("button", name=f"Edit {tenant}").click()
    limits = page.get_by_role("form", name=f"Limits of {tenant}")
    limits.get_by_label("Budget (USD)").fill("12.5")
    limits.get_by_role("button", name=f"Save limits of {tenant}").click()

    expect(page.locator("#tenants-table tr", has_text=tenant)).to_contain_text("12.50 USD / month")
    settings = get(console_server.url, f"/admin/tenants/{tenant}", ADMIN_KEY).json()
    assert Decimal(settings["budget_usd"]) == Decimal("12.5")
    assert Decimal(get(console_server.url, "/v1/account", secret).json()["budgets"][0]["budget_usd"]) == Decimal("12.5")
