"""``/console``: the web console's page and files, served by the gateway itself.

The page signs in with a key that it keeps in its own memory (never in storage,
a cookie or a URL) and calls the gateway's APIs with it. ``console_routes``
builds the handlers around the files read once at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.console_assets import SECURITY_HEADERS, Asset, ConsoleAssets
from gateway.edge import Reply, Route
from gateway.errors import APIError
from gateway.exchange import Exchange

if TYPE_CHECKING:
    from gateway.context import Gateway


def _serve(x: Exchange, asset: Asset) -> Reply:
    headers = {**SECURITY_HEADERS, "etag": asset.etag}
    if x.headers.get("if-none-match") == asset.etag:
        return Reply(raw=b"", status=304, headers=headers, content_type=asset.content_type)
    return Reply(raw=asset.body, headers=headers, content_type=asset.content_type)


def console_routes(assets: ConsoleAssets | None = None) -> tuple[Route, ...]:
    """The console's routes over ``assets`` (default: the files shipped in the package)."""
    files = assets if assets is not None else ConsoleAssets.from_package()
    index = files.get("index.html")
    assert index is not None  # ConsoleAssets refuses a folder without one

    async def page(x: Exchange, gw: Gateway) -> Reply:
        return _serve(x, index)

    async def asset(x: Exchange, gw: Gateway) -> Reply:
        found = files.get(x.params["asset"])
        if found is None:
            raise APIError(404, f"Unknown path {x.path}.", code="unknown_url", headers=SECURITY_HEADERS)
        return _serve(x, found)

    return (
        Route("GET", "/console", page, "console"),
        Route("GET", "/console/", page, "console"),
        Route("GET", "/console/{asset:path}", asset, "console"),
    )
