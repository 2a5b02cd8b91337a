"""``create_app(config)``: the one factory that builds and wires the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from backends.factory import build_backend, profile_for
from billing.biller import Biller
from billing.database import BillingDatabase, open_database
from billing.keys import ApiKey
from billing.limits import LimitStore, open_limit_store
from billing.prices import PriceBook
from billing.tokens import TokenCounter
from gateway import errors
from gateway.auth import Authenticator
from gateway.catalog import ModelCatalog
from gateway.completions import CompletionService
from gateway.config import GatewayConfig, ReplicaConfig
from gateway.errors import APIError
from gateway.http import error_response, request_id, unexpected_error
from gateway.metrics import GatewayMetrics
from gateway.routes_admin import admin_router
from gateway.routes_openai import routes as openai_routes
from routing.breaker import CircuitBreaker
from routing.health import HealthMonitor
from routing.policies import make_policy
from routing.registry import ReplicaRegistry
from routing.replica import Replica
from routing.router import Router
from routing.telemetry import ReplicaTelemetry

log = logging.getLogger("maas.app")


@dataclass
class Gateway:
    """Every live part of one gateway process, wired together."""

    config: GatewayConfig
    catalog: ModelCatalog
    registry: ReplicaRegistry
    router: Router
    health: HealthMonitor
    db: BillingDatabase
    biller: Biller
    limits: LimitStore
    auth: Authenticator
    completions: CompletionService
    metrics: GatewayMetrics
    started_at: int

    def build_replica(self, spec: ReplicaConfig) -> Replica:
        return make_replica(spec, self.config)

    async def start_replica(self, replica: Replica) -> None:
        try:
            await replica.backend.start()
        except Exception as exc:  # noqa: BLE001 - a replica that fails to start is down, not fatal
            log.error("replica %s failed to start: %s", replica.id, exc)
            for _ in range(replica.breaker.failure_threshold):
                replica.breaker.record_failure()


def make_replica(spec: ReplicaConfig, config: GatewayConfig) -> Replica:
    """A routable replica (backend constructed, not started) from its config."""
    profile = profile_for(spec.chip)
    if profile is not None and spec.backend == "simulated":
        # the router predicts what the double will really do: its timings run time_scale as long
        profile = profile.scaled(spec.time_scale)
    model = config.model_by_name(spec.model)
    cost = spec.cost_per_hour
    if cost is None:
        if profile is None:
            raise ValueError(f"replica {spec.id}: set cost_per_hour (chip {spec.chip!r} has no default)")
        cost = profile.cost_per_hour
    return Replica(
        spec.id,
        spec.model,
        spec.chip,
        cost,
        build_backend(spec, max_model_len=model.max_model_len if model else None),
        profile=profile,
        simulated=spec.backend == "simulated",
        telemetry=ReplicaTelemetry(alpha=config.routing.ewma_alpha),
        breaker=CircuitBreaker(config.routing.breaker_failures, config.routing.breaker_cooldown_s),
    )


def price_book(config: GatewayConfig) -> PriceBook:
    """Model prices, with per-tenant overrides regrouped as tenant -> model -> price."""
    overrides: dict[str, dict[str, object]] = {}
    for model in config.models:
        for tenant, price in model.tenant_prices.items():
            overrides.setdefault(tenant, {})[model.name] = price
    return PriceBook(config.models, overrides)


def _anonymous_key(config: GatewayConfig) -> ApiKey | None:
    if not config.server.allow_anonymous:
        return None
    return ApiKey(
        id="anonymous",
        tenant=config.server.anonymous_tenant,
        name="anonymous",
        prefix="-",
        models=None,
        created_at=0.0,
        revoked_at=None,
    )


async def build_gateway(config: GatewayConfig) -> Gateway:
    """Open stores and construct every part; backends are started by ``start``."""
    metrics = GatewayMetrics()
    db = await open_database(config.ledger)
    try:
        db.ledger.on_flush = metrics.ledger_flushed
        limits = open_limit_store(config.limits.store)
        biller = Biller(db, price_book(config), limits, config.limits)
        catalog = ModelCatalog(config.models)
        registry = ReplicaRegistry([make_replica(spec, config) for spec in config.replicas])
        router = Router(registry, make_policy(config.routing.policy, slo=config.routing.slo), config.routing, observer=metrics)
        health = HealthMonitor(registry, config.routing)
        tokens = TokenCounter()
        completions = CompletionService(catalog, router, biller, tokens, metrics)
        auth = Authenticator(db.keys, admin_key=config.admin_key, anonymous=_anonymous_key(config))
    except BaseException:
        await db.close()
        raise
    metrics.watch(registry.all, lambda: db.ledger.queue_depth)
    return Gateway(
        config=config,
        catalog=catalog,
        registry=registry,
        router=router,
        health=health,
        db=db,
        biller=biller,
        limits=limits,
        auth=auth,
        completions=completions,
        metrics=metrics,
        started_at=int(time.time()),
    )


async def start(gw: Gateway) -> None:
    await asyncio.gather(*(gw.start_replica(r) for r in gw.registry.all()))
    await gw.health.start()


async def stop(gw: Gateway) -> None:
    await gw.health.stop()
    await asyncio.gather(*(r.backend.close() for r in gw.registry.all()), return_exceptions=True)
    await gw.biller.close()
    await gw.limits.close()
    await gw.db.close()


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    rid = request_id(request)
    if exc.status_code == 404:
        return error_response(errors.APIError(404, f"Unknown path {request.url.path}.", code="unknown_url"), rid)
    if exc.status_code == 405:
        return error_response(
            errors.APIError(405, f"Method {request.method} is not allowed on {request.url.path}.", code="method_not_allowed"),
            rid,
        )
    return error_response(errors.APIError(exc.status_code, str(exc.detail)), rid)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": "value_error"}
    loc = tuple(p for p in err.get("loc", ()) if p not in ("body", "query", "path"))
    param = ".".join(str(p) for p in loc) or None
    if err.get("type") == "json_invalid":
        return error_response(errors.invalid_json(str(err.get("msg"))), request_id(request))
    return error_response(errors.bad_request(f"Invalid value for '{param}': {err.get('msg')}.", param=param), request_id(request))


async def _api_error(request: Request, exc: APIError) -> Response:
    return error_response(exc, request_id(request))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_error(exc, request_id(request))


def create_app(config: GatewayConfig) -> FastAPI:
    """Build the ASGI app for ``config``; parts are built and started in its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await build_gateway(config)
        app.state.gateway = gw
        try:
            await start(gw)
            yield
        finally:
            await stop(gw)

    app = FastAPI(
        title="maas-gateway",
        description="OpenAI-compatible gateway routing across replicas on many chips, with per-token billing.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.router.routes.extend(openai_routes)
    app.include_router(admin_router)
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(APIError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    return app
