"""Operator API under /admin (admin key), the caller's own /v1/usage, and /metrics."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from gateway import errors
from gateway.admin_bodies import KeyCreate, TenantSettings
from gateway.auth import require_metrics_token
from gateway.config import ReplicaConfig
from gateway.edge import Reply, Route
from gateway.exchange import Exchange
from gateway.registrations import vet_registration
from gateway.routes_openai import read_body
from gateway.schemas import parse_body
from gateway.usage_views import usage_reply

if TYPE_CHECKING:
    from gateway.context import Gateway


def _admin(x: Exchange, gw: Gateway) -> None:
    gw.auth.require_admin(x)


async def create_key(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    body: KeyCreate = parse_body(KeyCreate, await read_body(x, gw))
    for name in body.models or ():
        if gw.catalog.resolve(name) is None:
            raise errors.model_not_found(name)
    key, secret = await gw.db.keys.create(
        body.tenant,
        name=body.name,
        models=tuple(body.models) if body.models is not None else None,
        rpm=body.rpm,
        tpm=body.tpm,
        concurrent=body.concurrent,
        budget_usd=body.budget_usd,
        budget_period=body.budget_period,
    )
    # the secret is shown this once; only its hash is stored
    return Reply({**key.to_dict(), "key": secret}, status=201)


async def list_keys(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    keys = await gw.db.keys.list(x.query().get("tenant"))
    return Reply({"object": "list", "data": [k.to_dict() for k in keys]})


async def revoke_key(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    key_id = x.params["key_id"]
    if not await gw.db.keys.revoke(key_id):
        raise errors.not_found(f"Key {key_id}")
    return Reply({"id": key_id, "revoked": True})


async def set_tenant(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    tenant = x.params["tenant"]
    body: TenantSettings = parse_body(TenantSettings, await read_body(x, gw))
    saved = await gw.db.tenants.configure(
        tenant, rpm=body.rpm, tpm=body.tpm, concurrent=body.concurrent, budget_usd=body.budget_usd,
        period=body.budget_period,
    )
    return Reply(saved.to_dict())


async def get_tenant(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return Reply((await gw.db.tenants.get(x.params["tenant"])).to_dict())


async def list_replicas(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    now = time.monotonic()
    data = []
    for replica in gw.registry.all():
        view = replica.snapshot(now)
        view["backend"] = type(replica.backend).__name__
        stats = replica.backend.stats()
        view["engine"] = {"running": stats.running, "waiting": stats.waiting, "kv_cache_usage": stats.kv_cache_usage}
        data.append(view)
    return Reply({"object": "list", "data": data})


async def register_replica(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    spec: ReplicaConfig = parse_body(ReplicaConfig, await read_body(x, gw))
    if gw.registry.get(spec.id) is not None:
        raise errors.APIError(409, f"Replica {spec.id!r} already exists.", code="replica_exists", param="id")
    if gw.catalog.resolve(spec.model) is None:
        raise errors.model_not_found(spec.model)
    await vet_registration(spec, gw.config)
    try:
        replica = await gw.lifecycle.register(spec)
    except ValueError as exc:
        raise errors.bad_request(str(exc), param="pool" if spec.pool else "chip") from None
    return Reply(replica.snapshot(), status=201)


async def drain_replica(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return Reply(gw.lifecycle.drain(x.params["replica_id"]).snapshot())


async def undrain_replica(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return Reply(gw.lifecycle.undrain(x.params["replica_id"]).snapshot())


async def remove_replica(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    replica_id = x.params["replica_id"]
    if gw.registry.get(replica_id) is None:
        raise errors.not_found(f"Replica {replica_id}")
    timeout_s = _seconds(x.query().get("timeout_s"), default=30.0, maximum=600.0, param="timeout_s")
    left = await gw.lifecycle.remove(replica_id, timeout_s=timeout_s)
    return Reply({"id": replica_id, "removed": True, "in_flight_cut": left})


async def fleet(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return Reply(gw.fleet.snapshot())


async def scorecard(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return Reply({"object": "list", "data": gw.router.scorecard.rows()})


async def admin_usage(x: Exchange, gw: Gateway) -> Reply:
    _admin(x, gw)
    return await usage_reply(gw, x.query(), tenant=None)


async def own_usage(x: Exchange, gw: Gateway) -> Reply:
    """The caller's own usage: totals by model and day."""
    key = await gw.auth.tenant_key(x)
    return await usage_reply(gw, x.query(), tenant=key.tenant)


async def metrics(x: Exchange, gw: Gateway) -> Reply:
    require_metrics_token(x, gw.config.metrics_token)
    return Reply(raw=gw.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


def _seconds(raw: str | None, *, default: float, maximum: float, param: str) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= maximum:
        raise errors.bad_request(f"'{param}' must be a number of seconds from 0 to {maximum:g}.", param=param)
    return value


routes = (
    Route("POST", "/admin/keys", create_key, "admin"),
    Route("GET", "/admin/keys", list_keys, "admin"),
    Route("DELETE", "/admin/keys/{key_id}", revoke_key, "admin"),
    Route("PUT", "/admin/tenants/{tenant}", set_tenant, "admin"),
    Route("GET", "/admin/tenants/{tenant}", get_tenant, "admin"),
    Route("GET", "/admin/replicas", list_replicas, "admin"),
    Route("POST", "/admin/replicas", register_replica, "admin"),
    Route("POST", "/admin/replicas/{replica_id}/drain", drain_replica, "admin"),
    Route("POST", "/admin/replicas/{replica_id}/undrain", undrain_replica, "admin"),
    Route("DELETE", "/admin/replicas/{replica_id}", remove_replica, "admin"),
    Route("GET", "/admin/scorecard", scorecard, "admin"),
    Route("GET", "/admin/fleet", fleet, "admin"),
    Route("GET", "/admin/usage", admin_usage, "admin"),
    Route("GET", "/v1/usage", own_usage, "usage"),
    Route("GET", "/metrics", metrics, "metrics"),
)
