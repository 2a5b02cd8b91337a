"""Which handler answers a method and path: exact paths by dict, templated ones by regex.

``/v1/chat/completions`` is one dict lookup; ``/admin/replicas/{replica_id}/drain``
and ``/v1/models/{model:path}`` (``path`` params may contain slashes) are matched
in declaration order. A known path with another method is 405, anything else 404.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import APIError

Handler = Callable[[Any, Any], Awaitable[Any]]
ErrorStyle = Literal["openai", "anthropic"]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint. ``name`` labels metrics (``endpoint``); ``errors`` picks the error body shape."""

    method: str
    path: str
    handler: Handler
    name: str
    errors: ErrorStyle = "openai"


class RouteTable:
    """Routes compiled for matching."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._exact_paths: set[str] = set()
        self._templated: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if _PARAM.search(route.path):
                self._templated.append((_compile(route.path), route))
            else:
                key = (route.method, route.path)
                if key in self._exact:
                    raise ValueError(f"route {route.method} {route.path} is declared twice")
                self._exact[key] = route
                self._exact_paths.add(route.path)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and its path parameters; raises APIError 404 / 405."""
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        known_path = path in self._exact_paths
        for pattern, candidate in self._templated:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict()
            known_path = True
        if known_path:
            raise APIError(405, f"Method {method} is not allowed on {path}.", code="method_not_allowed")
        raise APIError(404, f"Unknown path {path}.", code="unknown_url")


def _compile(template: str) -> re.Pattern[str]:
    pattern, last = [], 0
    for found in _PARAM.finditer(template):
        pattern.append(re.escape(template[last : found.start()]))
        name, kind = found.group(1), found.group(2)
        pattern.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        last = found.end()
    pattern.append(re.escape(template[last:]))
    return re.compile("".join(pattern))
