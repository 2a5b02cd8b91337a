"""Who is calling: API keys for tenants, one admin key for operators."""

from __future__ import annotations

import hmac

from billing.keys import ApiKey, KeyStore
from gateway import errors
from gateway.http import HasHeaders as Request
from gateway.http import bearer_token

_KEY_PREFIX = "sk-maas-"


class Authenticator:
    """Resolves ``Authorization: Bearer`` to a tenant's key, or checks the admin key."""

    def __init__(self, keys: KeyStore, *, admin_key: str | None, anonymous: ApiKey | None = None) -> None:
        self._keys = keys
        self._admin_key = admin_key
        self._anonymous = anonymous

    async def tenant_key(self, request: Request) -> ApiKey:
        token = bearer_token(request)
        if token is None:
            if self._anonymous is not None:
                return self._anonymous
            raise errors.missing_key()
        if self._anonymous is not None and not token.startswith(_KEY_PREFIX):
            # local trial mode: SDKs insist on some key ("EMPTY"); a real-looking key is still checked
            return self._anonymous
        key = await self._keys.lookup(token, include_revoked=True)
        if key is None:
            raise errors.invalid_key()
        if key.revoked_at is not None:
            raise errors.key_revoked()
        return key

    def require_admin(self, request: Request) -> None:
        token = bearer_token(request)
        if self._admin_key is None:
            raise errors.APIError(
                403,
                "The admin API is disabled: set MAAS_ADMIN_KEY to enable it.",
                type="permission_error",
                code="admin_disabled",
            )
        if token is None or not hmac.compare_digest(token.encode(), self._admin_key.encode()):
            raise errors.admin_required()
