"""``create_app(config)``: the one factory that builds and wires the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from billing.biller import Biller
from billing.database import open_database
from billing.keys import ApiKey
from billing.limits import open_limit_store
from billing.prices import PriceBook
from billing.tokens import TokenAccounting
from gateway.auth import Authenticator
from gateway.catalog import ModelCatalog
from gateway.config import GatewayConfig
from gateway.context import Gateway
from gateway.edge import Edge
from gateway.metrics import GatewayMetrics
from gateway.plan import Planner
from gateway.replicas import make_replica
from gateway.routes_admin import routes as admin_routes
from gateway.routes_embeddings import routes as embedding_routes
from gateway.routes_messages import routes as messages_routes
from gateway.routes_openai import routes as openai_routes
from gateway.routes_responses import routes as responses_routes
from gateway.serving import Serving
from routing.health import HealthMonitor
from routing.policies import make_policy
from routing.registry import ReplicaRegistry
from routing.router import Router

__all__ = ["Gateway", "build_gateway", "create_app", "price_book"]


def price_book(config: GatewayConfig) -> PriceBook:
    """Model prices, with per-tenant overrides regrouped as tenant -> model -> price."""
    overrides: dict[str, dict[str, object]] = {}
    for model in config.models:
        for tenant, price in model.tenant_prices.items():
            overrides.setdefault(tenant, {})[model.name] = price
    return PriceBook(config.models, overrides)


def model_tokenizers(config: GatewayConfig) -> dict[str, str]:
    """Each model's own tokenizer: configured, else the model directory of its in-process engine."""
    paths: dict[str, str] = {}
    embedding = {m.name for m in config.models if m.kind == "embedding"}
    for replica in config.replicas:
        if replica.backend == "vllm" and replica.engine is not None:
            path = replica.engine.model_path
            if path is None:
                from backends.bundled_embedding import bundled_embedding_path
                from backends.bundled_model import bundled_model_path

                bundled = bundled_embedding_path() if replica.model in embedding else bundled_model_path()
                path = None if bundled is None else str(bundled)
            if path is not None:
                paths.setdefault(replica.model, path)
    for model in config.models:
        if model.tokenizer:
            paths[model.name] = model.tokenizer
    return paths


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
        accounting = TokenAccounting(model_tokenizers(config))
        planner = Planner(catalog, registry, accounting)
        serving = Serving(router, biller, accounting, observer=metrics)
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
        planner=planner,
        serving=serving,
        accounting=accounting,
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
    gw.accounting.close()


def create_app(config: GatewayConfig) -> Edge:
    """Build the ASGI app for ``config``; parts are built and started in its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[Gateway]:
        gw = await build_gateway(config)
        try:
            await start(gw)
            yield gw
        finally:
            await stop(gw)

    routes = (*openai_routes, *responses_routes, *messages_routes, *embedding_routes, *admin_routes)
    return Edge(routes, lifespan=lifespan, observer=lambda gw: gw.metrics)
