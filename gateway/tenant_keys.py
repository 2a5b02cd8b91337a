"""Which of a tenant's own keys may manage the tenant's keys, and what they may create.

The rule: a key with no restrictions of its own — every model, no per-key rate
limit and no per-key budget — is a *manager key*. It may list the tenant's keys,
create keys for the tenant (restricted or not; the secret is shown once) and
revoke any of them. A restricted key may call the API and read the tenant's usage
but never touch keys: if it could create keys, a key limited to one model or to
10 USD a month could mint itself unlimited ones, and its limits would mean nothing.
Operators make a tenant's first manager key (``maas keys create --tenant T``).

Anonymous access (local trials) is not a stored key and manages nothing.
Keys of other tenants are invisible: asking for one is a 404, as for a key that
does not exist, so a tenant cannot even learn that another tenant's key id exists.
"""

from __future__ import annotations

from pydantic import Field

from billing.keys import ApiKey
from gateway import errors
from gateway.admin_bodies import Limits
from gateway.catalog import ModelCatalog

#: the most models one key may be limited to (as for the admin API)
_MAX_KEY_MODELS = 256


class TenantKeyCreate(Limits):
    """POST /v1/keys: a new key of the caller's own tenant."""

    name: str | None = Field(default=None, max_length=128)
    models: list[str] | None = Field(default=None, min_length=1, max_length=_MAX_KEY_MODELS)


def is_manager(key: ApiKey) -> bool:
    """A key without restrictions of its own (see the module's docstring)."""
    limits = key.limits
    return key.models is None and key.budget_usd is None and limits.rpm is None and limits.tpm is None and (
        limits.concurrent is None
    )


def require_manager(key: ApiKey, stored: ApiKey | None) -> None:
    """Refuse key management to anonymous access and to restricted keys (403)."""
    if stored is None:
        raise errors.APIError(
            403, "Anonymous access cannot manage keys: sign in with one of the tenant's API keys.",
            type="permission_error", code="key_management_not_allowed",
        )
    if not is_manager(stored):
        raise errors.APIError(
            403,
            "This key is restricted (to some models, or by its own limits or budget), so it cannot manage keys. "
            "Use a key without restrictions of its own, or ask the operator.",
            type="permission_error", code="key_management_not_allowed",
        )


def check_models(catalog: ModelCatalog, models: list[str] | None) -> tuple[str, ...] | None:
    """The models a new key may call, each one a model (or alias) the gateway serves."""
    if models is None:
        return None
    for name in models:
        if catalog.resolve(name) is None:
            raise errors.model_not_found(name)
    return tuple(models)


def own_key(key: ApiKey | None, tenant: str, key_id: str) -> ApiKey:
    """The tenant's key ``key_id``; another tenant's key is reported exactly like a missing one."""
    if key is None or key.tenant != tenant:
        raise errors.not_found(f"Key {key_id}")
    return key
