"""What the router needs to know about one request to place it."""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.preferences import NO_PREFERENCE, RoutingPreference


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The routing view of a request: sizes (estimates) and the caller's preference.

    ``model`` is the canonical model name; ``prompt_tokens`` an estimate;
    ``prefix_key`` identifies a shared prompt prefix (for cache affinity).
    """

    model: str
    prompt_tokens: int
    max_tokens: int
    n: int = 1
    prefix_key: str | None = None
    preference: RoutingPreference = field(default=NO_PREFERENCE)
    #: backend capabilities the request needs (``backends.base.Capabilities`` field names)
    needs: frozenset[str] = frozenset()
