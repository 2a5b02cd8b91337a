"""Who is calling: API keys for tenants, one admin key for operators, a token for /metrics.

A tenant's key comes as ``Authorization: Bearer KEY`` (OpenAI's SDKs) or as
``x-api-key: KEY`` (Anthropic's), under the same rules.

Anonymous access (local trials) serves requests that carry no key at all, or the
SDKs' documented placeholder ``EMPTY`` (the openai SDK refuses to run without some
key). Any other bearer token must be a valid key: a mistyped key is a 401, never
silently the anonymous tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from billing.keys import ApiKey, KeyStore
from gateway import errors
from gateway.admin_throttle import AdminAuthThrottle

log = logging.getLogger("maas.auth")

#: what a local trial's SDK sends as its key (``OpenAI(api_key="EMPTY")``); accepted only while anonymous access is on
ANONYMOUS_PLACEHOLDER = "EMPTY"


class Request(Protocol):
    """What authentication reads of a request: its headers (address, method and path for the log)."""

    @property
    def headers(self) -> Mapping[str, str]: ...


def _client(request: Any) -> tuple[str, str]:
    """The client's address and ``METHOD /path`` (an edge Exchange, or a Starlette Request)."""
    address = getattr(request, "client_host", None)
    if address is None:
        client = getattr(request, "client", None)
        address = client.host if client is not None else None
    path = getattr(request, "path", None) or getattr(getattr(request, "url", None), "path", "?")
    return address or "unknown", f"{getattr(request, 'method', '?')} {path}"


def presented_token(request: Request) -> str | None:
    """The key: ``Authorization: Bearer`` or else Anthropic's ``x-api-key`` header, None when neither
    was sent; a malformed or empty one is a 401."""
    header = request.headers.get("authorization")
    if header is None:
        api_key = request.headers.get("x-api-key")
        if api_key is None:
            return None
        if not api_key.strip():
            raise errors.APIError(
                401, "Empty x-api-key header: send your key.", type="authentication_error", code="invalid_api_key"
            )
        return api_key.strip()
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.APIError(
            401,
            "Malformed Authorization header: send 'Authorization: Bearer YOUR_KEY'.",
            type="authentication_error",
            code="invalid_api_key",
        )
    return token


def _same_secret(given: str, expected: str) -> bool:
    # digests first: equal lengths, so not even the key's length shows in the timing
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


class Authenticator:
    """Resolves ``Authorization: Bearer`` to a tenant's key, or checks the admin key."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        admin_key: str | None,
        anonymous: ApiKey | None = None,
        throttle: AdminAuthThrottle | None = None,
    ) -> None:
        self._keys = keys
        self._admin_key = admin_key
        self._anonymous = anonymous
        self.throttle = throttle or AdminAuthThrottle()

    async def tenant_key(self, request: Request) -> ApiKey:
        token = presented_token(request)
        if self._anonymous is not None and token in (None, ANONYMOUS_PLACEHOLDER):
            return self._anonymous
        if token is None:
            raise errors.missing_key()
        key = await self._keys.lookup(token, include_revoked=True)
        if key is None:
            raise errors.invalid_key()
        if key.revoked_at is not None:
            raise errors.key_revoked()
        return key

    def require_admin(self, request: Request) -> None:
        if self._admin_key is None:
            raise errors.APIError(
                403,
                "The admin API is disabled: set MAAS_ADMIN_KEY to enable it.",
                type="permission_error",
                code="admin_disabled",
            )
        address, what = _client(request)
        wait = self.throttle.retry_after(address)
        if wait is not None:
            raise errors.APIError(
                429,
                f"Too many failed admin authentications from your address; retry in {wait}s.",
                type="requests",
                code="admin_auth_throttled",
                headers={"retry-after": str(wait)},
            )
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() == "bearer" and _same_secret(token.strip(), self._admin_key):
            self.throttle.succeeded(address)
            return
        failures, lockout = self.throttle.failed(address)
        # never the token itself: a near-miss would leak most of the key into the logs
        log.warning(
            "admin authentication failed from %s for %s (%d in a row%s)",
            address, what, failures, f"; locked out for {lockout:g}s" if lockout else "",
        )
        raise errors.admin_required()


def require_metrics_token(request: Request, token: str | None) -> None:
    """With MAAS_METRICS_TOKEN set, /metrics answers only a scraper that sends it as a bearer token."""
    if token is None:
        return
    header = request.headers.get("authorization") or ""
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not _same_secret(given.strip(), token):
        raise errors.APIError(
            401,
            "/metrics needs the metrics token: send 'Authorization: Bearer $MAAS_METRICS_TOKEN'.",
            type="authentication_error",
            code="invalid_metrics_token",
        )
