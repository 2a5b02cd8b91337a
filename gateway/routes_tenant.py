"""A tenant's self-service API: its account (limits, budgets and what is left) and its keys.

``GET /v1/account`` answers any key of the tenant. ``/v1/keys`` (list, create,
revoke) answers only the tenant's manager keys (the rule is in
``gateway.tenant_keys``). Everything is scoped to the caller's own tenant; the
operator's costs never appear here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from billing.keys import ApiKey
from billing.money import from_nano, to_nano
from billing.quotas import RateLimits, period_at
from gateway.edge import Reply, Route
from gateway.exchange import Exchange
from gateway.routes_openai import read_body
from gateway.schemas import parse_body
from gateway.tenant_keys import TenantKeyCreate, check_models, is_manager, own_key, require_manager

if TYPE_CHECKING:
    from decimal import Decimal

    from gateway.context import Gateway


async def _manager(x: Exchange, gw: Gateway) -> ApiKey:
    key = await gw.auth.tenant_key(x)
    # read from the database, not the auth cache: the key's powers as they are now
    require_manager(key, await gw.db.keys.get(key.id))
    return key


def _key_view(key: ApiKey, caller: ApiKey) -> dict[str, object]:
    return {**key.to_dict(), "manager": is_manager(key), "current": key.id == caller.id}


async def list_keys(x: Exchange, gw: Gateway) -> Reply:
    caller = await _manager(x, gw)
    keys = await gw.db.keys.list(caller.tenant)
    return Reply({"object": "list", "data": [_key_view(k, caller) for k in keys]})


async def create_key(x: Exchange, gw: Gateway) -> Reply:
    caller = await _manager(x, gw)
    body: TenantKeyCreate = parse_body(TenantKeyCreate, await read_body(x, gw))
    key, secret = await gw.db.keys.create(
        caller.tenant,
        name=body.name,
        models=check_models(gw.catalog, body.models),
        rpm=body.rpm,
        tpm=body.tpm,
        concurrent=body.concurrent,
        budget_usd=body.budget_usd,
        budget_period=body.budget_period,
    )
    # the secret is shown this once; only its hash is stored
    return Reply({**_key_view(key, caller), "key": secret}, status=201)


async def revoke_key(x: Exchange, gw: Gateway) -> Reply:
    caller = await _manager(x, gw)
    key_id = x.params["key_id"]
    key = own_key(await gw.db.keys.get(key_id), caller.tenant, key_id)
    if key.revoked_at is None:
        await gw.db.keys.revoke(key_id)
    return Reply({"id": key_id, "revoked": True})


def _limits(limits: RateLimits) -> dict[str, int | None]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "concurrent": limits.concurrent}


async def _budget(
    gw: Gateway, scope: str, budget: Decimal | None, period: str, now: float, **owner: str
) -> dict[str, object] | None:
    if budget is None:
        return None
    window = period_at(period, now)
    spent = await gw.db.ledger.spend_nano(**owner, since=window.start, until=window.end)
    left = max(to_nano(budget) - spent, 0)
    return {
        "scope": scope, "budget_usd": str(budget), "period": period, "period_id": window.id,
        "resets_at": window.end, "spent_usd": str(from_nano(spent)), "left_usd": str(from_nano(left)),
        "currency": "USD",
    }


async def account(x: Exchange, gw: Gateway) -> Reply:
    """The caller's key and tenant: effective rate limits, budgets, and what is left of them."""
    key = await gw.auth.tenant_key(x)
    tenant = await gw.db.tenants.get(key.tenant)
    defaults = gw.config.limits
    now = time.time()
    budgets = [
        await _budget(gw, "key", key.budget_usd, key.budget_period, now, key_id=key.id),
        await _budget(gw, "tenant", tenant.budget_usd, tenant.budget_period, now, tenant=key.tenant),
    ]
    stored = await gw.db.keys.get(key.id)
    return Reply({
        "object": "account",
        "tenant": key.tenant,
        "key": {
            "id": key.id, "name": key.name, "prefix": key.prefix,
            "models": None if key.models is None else list(key.models),
            "manager": stored is not None and is_manager(stored),
        },
        "limits": {
            "key": _limits(key.limits.over(defaults.per_key)),
            "tenant": _limits(tenant.limits.over(defaults.per_tenant)),
        },
        "budgets": [b for b in budgets if b is not None],
        "currency": "USD",
    })


routes = (
    Route("GET", "/v1/account", account, "account"),
    Route("GET", "/v1/keys", list_keys, "keys"),
    Route("POST", "/v1/keys", create_key, "keys"),
    Route("DELETE", "/v1/keys/{key_id}", revoke_key, "keys"),
)
