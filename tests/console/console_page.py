"""Driving the console in a real browser: launch Debian's Chromium, sign in, move between views,
read tables the way a person reads them (by their headers)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Playwright, expect

#: the system's browser (Debian's ``chromium`` package); tests never download one
CHROMIUM = "/usr/bin/chromium"
#: what keeps Chromium off the network on these machines (Playwright adds --headless and a
#: fresh temporary --user-data-dir itself)
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def launch_chromium(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `scripts/install.sh test` installs Debian's chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True)


class ConsolePage:
    """One browser tab on the console, with what it has complained about."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        self.requested: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console_message)
        page.on("request", lambda request: self.requested.append(request.url))

    def _console_message(self, message: ConsoleMessage) -> None:
        # an API answering 4xx is logged by Chromium as a failed resource: the views report those
        # themselves; anything else (a script error, a CSP violation) is a defect of the console
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def open(self, fragment: str = "") -> ConsolePage:
        self.page.goto(f"{self.base_url}/console{fragment}")
        return self

    def sign_in(self, key: str) -> ConsolePage:
        if not self.page.url.startswith(f"{self.base_url}/console"):
            self.open()
        self.page.get_by_label("Key", exact=True).fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("navigation", name="Console sections")).to_be_visible()
        return self

    def go(self, title: str) -> ConsolePage:
        self.page.get_by_role("navigation").get_by_role("link", name=title, exact=True).click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text(title)
        return self

    def table(self, table_id: str) -> Locator:
        return self.page.locator(f"[id='{table_id}'] table")

    def rows(self, table_id: str) -> list[dict[str, str]]:
        """The table's body rows as {header: cell text}."""
        table = self.table(table_id)
        expect(table).to_be_visible()
        headers = table.locator("thead th").all_inner_texts()
        rows = []
        for row in table.locator("tbody tr").all():
            cells = row.locator("td").all_inner_texts()
            if len(cells) == len(headers):
                rows.append(dict(zip(headers, (c.strip() for c in cells), strict=True)))
        return rows

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)


def money_text(amount: str) -> str:
    """How the console writes a decimal amount of USD: trailing zeros dropped, two decimals kept."""
    whole, _, fraction = amount.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{int(whole)}.{fraction} USD"

