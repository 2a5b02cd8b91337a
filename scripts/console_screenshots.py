"""Screenshots of the console's main pages for the README (docs/console/*.png).

Starts a gateway over the simulated pool (the labelled test double: no GPU, no model), sends some
real traffic from three tenants through its API, then photographs each page in the system's
headless Chromium at 1280x800 (and the usage page at a phone's width). Rerun after changing the
console:

    .venv/bin/python scripts/console_screenshots.py            # writes docs/console/*.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.console.console_page import ConsolePage, launch_chromium
from tests.live_server import ADMIN_KEY, LiveServer, sim_config

OUT = ROOT / "docs" / "console"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ZONE = "Europe/Berlin"  # a zone other than UTC, to show times in the viewer's zone


def traffic(server: LiveServer) -> str:
    """Requests from three tenants; returns the key acme's people sign in with."""
    acme = server.create_key("acme", name="acme-admin")
    server.create_key("acme", name="nightly-batch", models=["other-model"], rpm=60, budget_usd="5")
    globex = server.create_key("globex", name="globex-prod")
    initech = server.create_key("initech", name="initech-app", budget_usd="1", budget_period="day")
    httpx.put(f"{server.url}/admin/tenants/acme", headers={"authorization": f"Bearer {ADMIN_KEY}"},
              json={"rpm": 600, "budget_usd": "25", "budget_period": "month"}).raise_for_status()
    plan = [(acme, "default", 12), (acme, "other-model", 4), (globex, "default:cheap", 9), (globex, "llama-8b:fast", 6),
            (initech, "other-model", 5)]
    for key, model, times in plan:
        for n in range(times):
            httpx.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                       json={"model": model, "max_tokens": 24 + 8 * n,
                             "messages": [{"role": "user", "content": "Summarise our chip options. " * (1 + n % 3)}]},
                       ).raise_for_status()
    for question in ("Which chips serve an 8B model within a 100 ms TPOT?", "And the cheapest of them per token?"):
        httpx.post(f"{server.url}/v1/responses", headers={"authorization": f"Bearer {acme}"}, timeout=30,
                   json={"model": "default", "input": question, "max_output_tokens": 60}).raise_for_status()
    return acme


def fleet_view(server: LiveServer, until, what: str) -> None:  # noqa: ANN001 - a predicate on the model's view
    """Poll GET /admin/fleet until the llama model's view satisfies ``until`` (a script, not a test: polling is fine)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fleet = httpx.get(f"{server.url}/admin/fleet", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
        view = next((m for m in fleet["models"] if m["model"] == "llama-3.1-8b-instruct"), None)
        if view is not None and until(view):
            return
        time.sleep(0.5)
    raise SystemExit(f"the fleet never showed {what}")


def shoot(console: ConsolePage, name: str) -> None:
    console.page.wait_for_load_state("networkidle")
    console.screenshot(OUT / f"{name}.png", full_page=False)
    print(f"wrote docs/console/{name}.png")


def tenant_pages(page: Page, server: LiveServer, key: str) -> None:
    console = ConsolePage(page, server.url).open().sign_in(key)
    shoot(console, "tenant-overview")
    console.go("Usage and spend")
    shoot(console, "tenant-usage")
    console.go("API keys")
    page.get_by_label("Name").fill("staging")
    page.get_by_label("Requests per minute").fill("120")
    page.get_by_label("Budget (USD)").fill("10")
    page.get_by_role("checkbox", name="llama-3.1-8b-instruct").check()
    page.get_by_role("button", name="Create key").click()
    page.locator("[data-secret]").wait_for()
    shoot(console, "tenant-keys")
    console.go("Playground")
    page.get_by_label("Message").fill("Which chip should serve a chat model at the lowest cost?")
    page.get_by_role("button", name="Send").click()
    page.locator("[data-field=cost]").wait_for()
    shoot(console, "tenant-playground")
    console.go("Stored responses")
    shoot(console, "tenant-responses")
    assert console.errors == [], console.errors


def operator_pages(page: Page, server: LiveServer) -> None:
    httpx.post(f"{server.url}/admin/replicas/kunlun-0/drain", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    console = ConsolePage(page, server.url).open().sign_in(ADMIN_KEY)
    console.page.locator("[data-model] table").first.wait_for()
    shoot(console, "operator-fleet")
    for title, name in (("Chip scorecard", "operator-scorecard"), ("Routing decisions", "operator-routing"),
                        ("Revenue and margin", "operator-revenue"), ("Tenants and keys", "operator-tenants")):
        console.go(title)
        shoot(console, name)
    assert console.errors == [], console.errors


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the default policy of a real deployment, so the routing page shows its reasons
        routing = {"policy": "cost_latency", "health_interval_s": 0.5, "breaker_cooldown_s": 1.0}
        # and a pool the planner sizes, so the fleet page shows its plan and reasons
        pools = [{"name": "mi300x", "model": "llama-3.1-8b-instruct", "chip": "amd-mi300x", "backend": "simulated",
                  "actuator": "simulated", "min": 1, "max": 3, "cold_start_s": 5}]  # real-time: its plan in real numbers
        server = LiveServer(sim_config(Path(tmp), routing=routing, pools=pools)).start()
        try:
            fleet_view(server, lambda v: v["pools"][0]["replicas"]["active"] >= 1, "the pool's replica active")
            key = traffic(server)
            # the planner's view of that traffic (it plans every few seconds)
            fleet_view(server, lambda v: v.get("demand_rps", 0) > 0, "a plan that saw the traffic")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for viewport, shots in ((DESKTOP, "desktop"), (PHONE, "phone")):
                    context = browser.new_context(viewport=viewport, timezone_id=ZONE, is_mobile=shots == "phone")
                    page = context.new_page()
                    if shots == "desktop":
                        tenant_pages(page, server, key)
                        operator_pages(context.new_page(), server)
                    else:
                        console = ConsolePage(page, server.url).open().sign_in(key).go("Usage and spend")
                        shoot(console, "tenant-usage-phone")
                    context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
