"""Operator API under /admin (admin key), the caller's own /v1/usage, and /metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from gateway import errors
from gateway.admin_bodies import KeyCreate, TenantSettings
from gateway.auth import require_metrics_token
from gateway.config import ReplicaConfig
from gateway.http import json_response
from gateway.registrations import vet_registration
from gateway.usage_views import usage_response

if TYPE_CHECKING:
    from gateway.app import Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def require_admin(request: Request) -> None:
    _gateway(request).auth.require_admin(request)


admin_router = APIRouter()
admin = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])


@admin.post("/keys", status_code=201)
async def create_key(body: KeyCreate, request: Request) -> Response:
    gw = _gateway(request)
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
    return json_response({**key.to_dict(), "key": secret}, status=201)


@admin.get("/keys")
async def list_keys(request: Request, tenant: str | None = None) -> Response:
    keys = await _gateway(request).db.keys.list(tenant)
    return json_response({"object": "list", "data": [k.to_dict() for k in keys]})


@admin.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> Response:
    if not await _gateway(request).db.keys.revoke(key_id):
        raise errors.not_found(f"Key {key_id}")
    return json_response({"id": key_id, "revoked": True})


@admin.put("/tenants/{tenant}")
async def set_tenant(tenant: str, body: TenantSettings, request: Request) -> Response:
    saved = await _gateway(request).db.tenants.configure(
        tenant, rpm=body.rpm, tpm=body.tpm, concurrent=body.concurrent, budget_usd=body.budget_usd,
        period=body.budget_period,
    )
    return json_response(saved.to_dict())


@admin.get("/tenants/{tenant}")
async def get_tenant(tenant: str, request: Request) -> Response:
    return json_response((await _gateway(request).db.tenants.get(tenant)).to_dict())


@admin.get("/replicas")
async def list_replicas(request: Request) -> Response:
    gw = _gateway(request)
    now = time.monotonic()
    data = []
    for replica in gw.registry.all():
        view = replica.snapshot(now)
        view["backend"] = type(replica.backend).__name__
        stats = replica.backend.stats()
        view["engine"] = {"running": stats.running, "waiting": stats.waiting, "kv_cache_usage": stats.kv_cache_usage}
        data.append(view)
    return json_response({"object": "list", "data": data})


@admin.post("/replicas", status_code=201)
async def register_replica(spec: ReplicaConfig, request: Request) -> Response:
    gw = _gateway(request)
    if gw.registry.get(spec.id) is not None:
        raise errors.APIError(409, f"Replica {spec.id!r} already exists.", code="replica_exists", param="id")
    if gw.catalog.resolve(spec.model) is None:
        raise errors.model_not_found(spec.model)
    await vet_registration(spec, gw.config)
    try:
        replica = gw.build_replica(spec)
    except ValueError as exc:
        raise errors.bad_request(str(exc), param="chip") from None
    await gw.start_replica(replica)
    gw.registry.add(replica)
    return json_response(replica.snapshot(), status=201)


@admin.post("/replicas/{replica_id}/drain")
async def drain_replica(replica_id: str, request: Request) -> Response:
    gw = _gateway(request)
    if gw.registry.get(replica_id) is None:
        raise errors.not_found(f"Replica {replica_id}")
    return json_response(gw.registry.drain(replica_id).snapshot())


@admin.post("/replicas/{replica_id}/undrain")
async def undrain_replica(replica_id: str, request: Request) -> Response:
    registry = _gateway(request).registry
    if registry.get(replica_id) is None:
        raise errors.not_found(f"Replica {replica_id}")
    return json_response(registry.undrain(replica_id).snapshot())


@admin.delete("/replicas/{replica_id}")
async def remove_replica(
    replica_id: str, request: Request, timeout_s: float = Query(default=30.0, ge=0, le=600)
) -> Response:
    gw = _gateway(request)
    replica = gw.registry.get(replica_id)
    if replica is None:
        raise errors.not_found(f"Replica {replica_id}")
    left = await gw.registry.remove(replica_id, timeout_s=timeout_s)
    await replica.backend.close()
    return json_response({"id": replica_id, "removed": True, "in_flight_cut": left})


@admin.get("/scorecard")
async def scorecard(request: Request) -> Response:
    return json_response({"object": "list", "data": _gateway(request).router.scorecard.rows()})


@admin.get("/usage")
async def admin_usage(request: Request) -> Response:
    return await usage_response(_gateway(request), request, tenant=None)


admin_router.include_router(admin)


@admin_router.get("/v1/usage", tags=["usage"])
async def own_usage(request: Request) -> Response:
    """The caller's own usage: totals by model and day."""
    gw = _gateway(request)
    key = await gw.auth.tenant_key(request)
    return await usage_response(gw, request, tenant=key.tenant)


@admin_router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    gw = _gateway(request)
    require_metrics_token(request, gw.config.metrics_token)
    return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
