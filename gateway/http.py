"""Reading credentials from request headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class HasHeaders(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


def bearer_token(request: HasHeaders) -> str | None:
    """The token of ``Authorization: Bearer TOKEN``, or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
