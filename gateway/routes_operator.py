"""Operator reads the console needs beyond the admin API: recent routing decisions, tenants.

Both behind the admin key. Decisions are this process's own (see
``gateway.decision_log``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from billing.tenants import Tenant
from gateway import errors
from gateway.edge import Reply, Route
from gateway.exchange import Exchange

if TYPE_CHECKING:
    from gateway.context import Gateway

_MAX_DECISIONS = 1000
_DECISION_PARAMS = ("since", "limit", "model")


def _number(raw: str | None, *, param: str, low: float, high: float) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise errors.bad_request(f"'{param}' must be a number from {low:g} to {high:g}.", param=param)
    return value


async def routing_decisions(x: Exchange, gw: Gateway) -> Reply:
    """``?since=<unix seconds>&limit=<1..1000>&model=``: newest first."""
    gw.auth.require_admin(x)
    query = x.query()
    unknown = sorted(set(query) - set(_DECISION_PARAMS))
    if unknown:
        raise errors.bad_request(f"Unknown query parameter '{unknown[0]}'.", param=unknown[0])
    since = _number(query.get("since"), param="since", low=0, high=1e11)
    limit = _number(query.get("limit"), param="limit", low=1, high=_MAX_DECISIONS)
    entries = gw.decisions.recent(since=since, limit=int(limit or 200), model=query.get("model") or None)
    return Reply({
        "object": "list", "capacity": gw.decisions.capacity, "data": [e.to_dict() for e in entries],
    })


async def list_tenants(x: Exchange, gw: Gateway) -> Reply:
    """Every tenant that has keys or stored settings, with its settings (defaults where none)."""
    gw.auth.require_admin(x)
    stored = {t.tenant: t for t in await gw.db.tenants.list()}
    names = sorted(set(stored) | {k.tenant for k in await gw.db.keys.list()})
    data = []
    for name in names:
        tenant = stored.get(name)
        data.append({**(tenant or Tenant(name)).to_dict(), "configured": tenant is not None})
    return Reply({"object": "list", "data": data})


routes = (
    Route("GET", "/admin/routing/decisions", routing_decisions, "admin"),
    Route("GET", "/admin/tenants", list_tenants, "admin"),
)
