"""Browser tests of the web console: a live gateway over the simulated pool, and the
system's headless Chromium (Debian's ``chromium``, never a downloaded browser) driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.console.console_page import ConsolePage, launch_chromium
from tests.live_server import LiveServer, sim_config


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(sim_config(tmp_path_factory.mktemp("console"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # module-scoped, not session-scoped: while Playwright's sync API is open its event loop counts
    # as running in this thread, and the suite's async tests could not run their own
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def console(page: Page, console_server: LiveServer) -> Iterator[ConsolePage]:
    tab = ConsolePage(page, console_server.url)
    yield tab
    # a script error or a content-security-policy violation is a failure of the console
    assert tab.errors == []
