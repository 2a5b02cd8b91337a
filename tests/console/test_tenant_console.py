"""The tenant's console in a real browser: usage, keys, models, the playground."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.console.console_page import ConsolePage, money_text
from tests.console.traffic import chat, get, respond
from tests.live_server import LiveServer


def _tenant(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def _plain(number: str) -> str:
    return number.replace(",", "").replace("\u202f", "").replace("\xa0", "")


def test_tenant_signs_in_and_sees_usage_that_matches_v1_usage(
    console: ConsolePage, console_server: LiveServer, tmp_path: Path
) -> None:
    key = console_server.create_key(_tenant("usage"))
    for model in ("default", "default", "other-model"):
        chat(console_server.url, key, model)
    expected = get(console_server.url, "/v1/usage", key).json()["data"]
    assert len(expected) == 2  # one row per model today

    console.open().sign_in(key).go("Usage and spend")
    shown = console.rows("usage-table")

    assert len(shown) == len(expected)
    by_model = {row["Model"]: row for row in shown}
    for row in expected:
        cells = by_model[row["model"]]
        assert cells["Day (UTC)"] == row["day"]
        assert _plain(cells["Requests"]) == str(row["requests"])
        assert _plain(cells["Prompt tokens"]) == str(row["prompt_tokens"])
        assert _plain(cells["Completion tokens"]) == str(row["completion_tokens"])
        assert cells["Charged"] == money_text(row["price_usd"])
    # the CSV button saves what /v1/usage answers as CSV for the period shown
    with console.page.expect_download() as download:
        console.page.get_by_role("button", name="Download CSV").click()
    saved = Path(download.value.path()).read_text()
    assert saved.splitlines()[0].startswith("model,day,requests")
    assert sorted(saved.splitlines()[1:]) == sorted(
        get(console_server.url, "/v1/usage", key, format="csv").text.splitlines()[1:]
    )


def test_tenant_sees_this_months_spend_and_what_is_left_of_its_budget(
    console: ConsolePage, console_server: LiveServer
) -> None:
    key = console_server.create_key(_tenant("budget"), budget_usd="2.5")
    chat(console_server.url, key)
    account = get(console_server.url, "/v1/account", key).json()
    (budget,) = account["budgets"]

    console.open().sign_in(key)

    card = console.page.locator("[data-budget=key]")
    expect(card).to_contain_text(f"{money_text(budget['left_usd'])} left")
    expect(card).to_contain_text(f"of 2.50 USD for {budget['period_id']}")
    expect(console.page.locator("#month-spend")).to_have_text(money_text(budget["spent_usd"]))


def test_tenant_creates_a_key_with_limits_and_models_then_revokes_it(
    console: ConsolePage, console_server: LiveServer
) -> None:
    tenant = _tenant("keys")
    key = console_server.create_key(tenant)
    console.open().sign_in(key).go("API keys")
    page = console.page

    page.get_by_label("Name").fill("ci-bot")
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_label("Budget (USD)").fill("2.50")
    page.get_by_role("checkbox", name="other-model").check()
    page.get_by_role("button", name="Create key").click()

    secret_box = page.locator("[data-secret]")
    expect(secret_box).to_have_text(re.compile(r"^sk-maas-\w{40}$"))
    secret = secret_box.inner_text()
    # the new key works, within what it was given
    assert chat(console_server.url, secret, "other-model").status_code == 200
    refused = httpx.post(
        f"{console_server.url}/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    rows = {row["Name"]: row for row in console.rows("keys-table")}
    assert rows["ci-bot"]["Models"] == "other-model"
    assert rows["ci-bot"]["Limits (rpm / tpm / concurrent)"].startswith("30 / ")
    assert rows["ci-bot"]["Budget"] == "2.50 USD / month"
    assert rows["ci-bot"]["Status"] == "active"

    page.get_by_role("button", name="Revoke key ci-bot").click()
    page.get_by_role("button", name="Yes, revoke").click()

    expect(page.locator("#keys-table tr", has_text="ci-bot")).to_contain_text("revoked")
    gone = httpx.post(
        f"{console_server.url}/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
        json={"model": "other-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert gone.status_code == 403 and gone.json()["error"]["code"] == "key_revoked"
    # neither key ever travelled in a URL
    assert not [url for url in console.requested if secret in url or key in url]


def test_tenant_runs_a_streamed_chat_in_the_playground_and_sees_where_it_ran(
    console: ConsolePage, console_server: LiveServer
) -> None:
    key = console_server.create_key(_tenant("play"))
    console.open().sign_in(key).go("Playground")
    page = console.page
    page.get_by_label("Model").select_option("other-model")
    page.get_by_label("Message").fill("Tell me about chips.")

    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as answered:
        page.get_by_role("button", name="Send").click()

    assert answered.value.headers["content-type"].startswith("text/event-stream")
    turn = page.locator("[data-turn=assistant]").last
    expect(turn.locator("[data-field=cost]")).to_have_text(re.compile(r"^\d+\.\d+ USD$"))
    assert turn.locator(".text").inner_text().strip()
    expect(turn.locator("[data-field=replica]")).to_have_text("other-0")
    expect(turn.locator("[data-field=chip]")).to_have_text("nvidia-a100")
    expect(turn.get_by_text("simulated", exact=True)).to_be_visible()
    expect(turn.locator("[data-field=ttft]")).to_have_text(re.compile(r"\d+ ms"))
    # the cost shown is what the ledger charged for it
    (usage,) = get(console_server.url, "/v1/usage", key).json()["data"]
    assert turn.locator("[data-field=cost]").inner_text() == money_text(usage["price_usd"])


def test_tenant_sees_the_models_it_may_call_with_prices_and_context_windows(
    console: ConsolePage, console_server: LiveServer
) -> None:
    key = console_server.create_key(_tenant("models"), models=["other-model"])
    console.open().sign_in(key).go("Models and prices")

    (row,) = console.rows("models-table")

    assert row["Model"] == "other-model"
    assert (row["Input"], row["Cached input"], row["Output"]) == ("1.00 USD", "1.00 USD", "2.00 USD")
    assert row["Chips"] == "nvidia-a100"


def _answer_text(response: dict) -> str:
    return " ".join(part["text"] for item in response["output"] if item["type"] == "message"
                    for part in item["content"]).strip()


def test_tenant_sees_its_stored_responses_newest_first_and_deletes_one(
    console: ConsolePage, console_server: LiveServer
) -> None:
    key = console_server.create_key(_tenant("stored"))
    older, newer = respond(console_server.url, key, "First question."), respond(console_server.url, key, "Second.")
    neighbour = respond(console_server.url, console_server.create_key(_tenant("stored-other")), "Not yours.")

    console.open().sign_in(key).go("Stored responses")
    rows = console.rows("responses-table")

    assert [row["Response"] for row in rows] == [newer["id"], older["id"]]
    assert neighbour["id"] not in console.page.locator("#responses-table").inner_text()
    for row, response in zip(rows, (newer, older), strict=True):
        assert row["Model"] == response["model"]
        assert _plain(row["Tokens"]) == str(response["usage"]["total_tokens"])
        assert row["Answer"].startswith(_answer_text(response)[:60])
    # delete the older one, after the inline confirmation; the API no longer has it
    console.page.get_by_role("button", name=f"Delete response {older['id']}").click()
    console.page.get_by_role("button", name="Yes, delete").click()
    expect(console.page.locator("#responses-table tbody tr")).to_have_count(1)
    assert get(console_server.url, f"/v1/responses/{older['id']}", key).status_code == 404
    assert get(console_server.url, f"/v1/responses/{newer['id']}", key).status_code == 200

