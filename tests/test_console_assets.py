"""How /console is served: every file with the security headers, cached by ETag, no inline code,
shipped in the package."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from gateway.console_assets import CONTENT_SECURITY_POLICY, ConsoleAssets
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "gateway" / "console"
FILES = sorted(p.relative_to(CONSOLE).as_posix() for p in CONSOLE.rglob("*") if p.is_file())


def test_the_policy_allows_only_the_consoles_own_scripts_styles_and_api() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))

    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == directives["form-action"] == directives["base-uri"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["", "/", *(f"/{name}" for name in FILES)])
def test_every_console_file_is_served_with_the_security_headers(sim_server: LiveServer, path: str) -> None:
    answer = httpx.get(f"{sim_server.url}/console{path}")

    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.content == (CONSOLE / (path.lstrip("/") or "index.html")).read_bytes()


def test_a_file_the_browser_has_is_answered_304_by_its_etag(sim_server: LiveServer) -> None:
    first = httpx.get(f"{sim_server.url}/console/js/app.js")

    again = httpx.get(f"{sim_server.url}/console/js/app.js", headers={"if-none-match": first.headers["etag"]})

    assert again.status_code == 304 and again.content == b""
    assert again.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/../gateway/app.py", "/console/js/%2e%2e/app.py"])
def test_an_unknown_console_path_is_a_404_in_openais_shape(sim_server: LiveServer, path: str) -> None:
    answer = httpx.get(f"{sim_server.url}{path}")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_url"


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        self.problems += [f"{tag} {name}=" for name in names if name.startswith("on") or name == "style"]


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    markup = _Markup()
    markup.feed((CONSOLE / "index.html").read_text())

    assert markup.problems == []


def test_the_page_asks_for_every_module_at_once() -> None:
    page = (CONSOLE / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/console/([^"]+)">', page))

    # app.js is the page's script; every module it imports, directly or not, is fetched in parallel with it
    assert preloaded == {name for name in FILES if name.endswith(".js")} - {"js/app.js"}


@pytest.mark.parametrize("name", [n for n in FILES if n.endswith(".js")])
def test_scripts_never_turn_strings_into_markup_or_code(name: str) -> None:
    source = (CONSOLE / name).read_text()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "localStorage", "sessionStorage", "document.cookie"):
        assert sink not in source, f"{name} uses {sink}"
    assert re.search(r"setAttribute\(\s*['\"]style", source) is None


def _glob_matches(path: str, pattern: str) -> bool:
    """setuptools' package-data globs: ``*`` stays within one folder."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


def test_every_console_file_ships_in_the_package() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gateway"]

    shipped = {name for name in FILES if any(_glob_matches(f"console/{name}", g) for g in globs)}

    assert shipped == set(FILES)
    assert ConsoleAssets.from_package().paths() == FILES
