"""What a console session may reach, where the key lives, and that the page is usable by
keyboard and on a phone."""

from __future__ import annotations

import secrets

import httpx
from playwright.sync_api import Browser, expect

from tests.console.console_page import ConsolePage, money_text
from tests.console.traffic import chat, get
from tests.live_server import LiveServer


def test_a_tenants_session_cannot_reach_operator_pages(console: ConsolePage, console_server: LiveServer) -> None:
    key = console_server.create_key(f"curious-{secrets.token_hex(3)}")
    console.open().sign_in(key)
    nav = console.page.get_by_role("navigation", name="Console sections")
    expect(nav.get_by_role("link", name="Fleet")).to_have_count(0)

    console.page.evaluate("() => { window.location.hash = '#/operator/fleet'; }")

    expect(console.page.get_by_role("heading", level=1)).to_have_text("Not available")
    expect(console.page.get_by_role("alert")).to_contain_text("This page is for operators")
    assert not [url for url in console.requested if "/admin/" in url]
    # and the gateway itself refuses the tenant's key on every operator endpoint
    for path in ("/admin/replicas", "/admin/usage", "/admin/routing/decisions", "/admin/tenants", "/admin/keys"):
        assert get(console_server.url, path, key).status_code == 401, path


def test_a_tenant_sees_only_its_own_usage_and_keys(console: ConsolePage, console_server: LiveServer) -> None:
    ours, theirs = f"ours-{secrets.token_hex(3)}", f"theirs-{secrets.token_hex(3)}"
    our_key, their_key = console_server.create_key(ours), console_server.create_key(theirs)
    chat(console_server.url, our_key, "other-model")
    for _ in range(2):
        chat(console_server.url, their_key)
    their_id = get(console_server.url, "/v1/keys", their_key).json()["data"][0]["id"]

    console.open().sign_in(our_key).go("Usage and spend")
    (row,) = console.rows("usage-table")
    assert (row["Model"], row["Requests"]) == ("other-model", "1")
    (ours_usage,) = get(console_server.url, "/v1/usage", our_key).json()["data"]
    assert row["Charged"] == money_text(ours_usage["price_usd"])
    # what the operator pays is never in a tenant's answer
    assert "compute_cost_usd" not in ours_usage and "margin_usd" not in ours_usage

    console.go("API keys")
    keys = console.rows("keys-table")
    assert len(keys) == 1 and keys[0]["Name"].startswith("–")
    # another tenant's key id is answered exactly like one that does not exist, and stays valid
    refused = httpx.delete(f"{console_server.url}/v1/keys/{their_id}", headers={"authorization": f"Bearer {our_key}"})
    missing = httpx.delete(f"{console_server.url}/v1/keys/key_0000000000000000", headers={"authorization": f"Bearer {our_key}"})
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"] == {**missing.json()["error"], "message": f"Key {their_id} not found."}
    assert chat(console_server.url, their_key).status_code == 200


def test_the_key_lives_only_in_the_pages_memory(console: ConsolePage, console_server: LiveServer) -> None:
    key = console_server.create_key(f"memory-{secrets.token_hex(3)}")
    console.open().sign_in(key).go("Usage and spend").go("Playground")
    page = console.page

    stored = page.evaluate("() => [document.cookie, JSON.stringify({...localStorage}), JSON.stringify({...sessionStorage})]")
    assert not [place for place in stored if key in place]
    assert not [url for url in console.requested if key in url]
    assert key not in page.content()  # nor in the document (the sign-in field was emptied)

    page.reload()

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_key_is_refused_with_the_gateways_reason(console: ConsolePage) -> None:
    console.open()
    console.page.get_by_label("Key", exact=True).fill("sk-maas-" + "x" * 40)
    console.page.get_by_role("button", name="Sign in").click()

    expect(console.page.get_by_role("alert")).to_have_text("Incorrect API key provided.")
    expect(console.page.get_by_role("navigation", name="Console sections")).to_be_hidden()


def test_the_console_is_driven_by_keyboard_alone(console: ConsolePage, console_server: LiveServer) -> None:
    key = console_server.create_key(f"keyboard-{secrets.token_hex(3)}")
    page = console.open().page
    expect(page.get_by_label("Key", exact=True)).to_be_focused()

    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    # from the page's top: skip link, then the sign-out button, then the menu
    page.locator("body").focus()
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent") == "Usage and spend":
            break
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Usage and spend")
    expect(page.get_by_role("heading", level=1)).to_be_focused()


def test_the_console_fits_a_phones_width(browser: Browser, console_server: LiveServer) -> None:
    key = console_server.create_key(f"phone-{secrets.token_hex(3)}")
    chat(console_server.url, key)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        console = ConsolePage(context.new_page(), console_server.url).open().sign_in(key).go("Usage and spend")
        page = console.page

        expect(console.table("usage-table")).to_be_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # wide tables scroll inside their own region, the page does not
        expect(page.get_by_role("link", name="Playground")).to_be_in_viewport()
        assert console.errors == []
    finally:
        context.close()
