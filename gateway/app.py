"""``create_app(config)``: the one factory that builds and wires the gateway."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from backends.actuators import Actuator, ExternalActuator, LocalActuator, ModelFacts, SimulatedActuator
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
from gateway.decision_log import DecisionLog
from gateway.edge import Edge, Route
from gateway.fleet import FleetController
from gateway.fleet_shared import SharedFleet
from gateway.intake import Intake
from gateway.lifecycle import Lifecycle
from gateway.metrics import GatewayMetrics
from gateway.observers import LoadRecorder, OverloadWatch, RoutingFanout, SettlementFanout
from gateway.plan import Planner
from gateway.routes_admin import routes as admin_routes
from gateway.routes_console import console_routes
from gateway.routes_embeddings import routes as embedding_routes
from gateway.routes_messages import routes as messages_routes
from gateway.routes_openai import routes as openai_routes
from gateway.routes_operator import routes as operator_routes
from gateway.routes_responses import routes as responses_routes
from gateway.routes_tenant import routes as tenant_routes
from gateway.serving import Serving
from routing.fleet.load import LoadTracker
from routing.fleet.planner import FleetPlanner
from routing.health import HealthMonitor
from routing.policies import make_policy
from routing.registry import ReplicaRegistry
from routing.router import Router

__all__ = ["Gateway", "build_gateway", "create_app", "price_book", "serving_app", "start", "stop"]


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


def _actuators(config: GatewayConfig) -> dict[str, Actuator]:
    models = ModelFacts(
        max_model_len={m.name: m.max_model_len for m in config.models},
        embedding_models=frozenset(m.name for m in config.models if m.kind == "embedding"),
    )
    actuators: dict[str, Actuator] = {
        "simulated": SimulatedActuator(models),
        "local": LocalActuator(models),
        "external": ExternalActuator(),
    }
    if any(p.actuator == "ray" for p in config.pools):  # imports ray only when a pool uses it
        from gateway.replica_server import ray_actuator

        actuators["ray"] = ray_actuator(config, models)
    return actuators


def _shared_fleet(config: GatewayConfig) -> SharedFleet | None:
    """Several gateways share the fleet through the limits' Redis; one alone needs nothing."""
    if not config.pools or not config.limits.store.startswith(("redis://", "rediss://", "unix://")):
        return None
    return SharedFleet.from_url(
        config.limits.store, ttl_s=3 * config.fleet.interval_s + 2, prefix=config.fleet.redis_prefix
    )


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
    decisions = DecisionLog()
    db = await open_database(config.ledger, checkpoint_options={
        "interval_s": config.streams.checkpoint_interval_s, "dead_after_s": config.streams.dead_after_s,
    })
    try:
        db.ledger.on_flush = metrics.ledger_flushed
        limits = open_limit_store(config.limits.store)
        biller = Biller(db, price_book(config), limits, config.limits)
        catalog = ModelCatalog(config.models)
        registry = ReplicaRegistry()
        lifecycle = Lifecycle(config, registry, _actuators(config), hours=db.replica_hours, observer=metrics)
        tracker = LoadTracker(config.fleet.load)
        fleet = FleetController(
            config, lifecycle, FleetPlanner(config.fleet, slo=config.routing.slo), tracker, shared=_shared_fleet(config)
        )
        lifecycle.on_lost = fleet.replan
        routing_observer = RoutingFanout((metrics, OverloadWatch(fleet.overloaded), decisions))
        policy = make_policy(config.routing.policy, slo=config.routing.slo)
        router = Router(registry, policy, config.routing, observer=routing_observer)
        health = HealthMonitor(registry, config.routing)
        accounting = TokenAccounting(model_tokenizers(config))
        planner = Planner(catalog, registry, accounting)
        serving = Serving(router, biller, accounting, observer=SettlementFanout((metrics, LoadRecorder(tracker))))
        auth = Authenticator(db.keys, admin_key=config.admin_key, anonymous=_anonymous_key(config))
    except BaseException:
        await db.close()
        raise
    metrics.watch(registry.all, lambda: db.ledger.queue_depth)
    metrics.watch_fleet(fleet)
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
        lifecycle=lifecycle,
        fleet=fleet,
        decisions=decisions,
        intake=Intake(per_key=config.server.large_bodies_per_key, bytes_per_s=config.server.large_body_bytes_per_s, max_body_bytes=config.server.max_body_bytes),
        started_at=int(time.time()),
    )


async def start(gw: Gateway) -> None:
    await gw.accounting.load(m.name for m in gw.config.models)
    await gw.db.checkpoints.start()
    await gw.lifecycle.start_static()
    await gw.health.start()
    await gw.fleet.start()


async def stop(gw: Gateway) -> None:
    await gw.fleet.stop()
    await gw.health.stop()
    await gw.lifecycle.close()
    await gw.biller.close()
    await gw.db.checkpoints.close()
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

    return Edge(_routes(), lifespan=lifespan, observer=lambda gw: gw.metrics, cors_origins=config.server.cors_origins)


def serving_app(gw: Gateway) -> Edge:
    """The ASGI app over a gateway already built and started; whoever started it stops it."""
    return Edge(_routes(), lifespan=lambda: contextlib.nullcontext(gw), observer=lambda gw: gw.metrics, cors_origins=gw.config.server.cors_origins)


def _routes() -> tuple[Route, ...]:
    return (*openai_routes, *responses_routes, *messages_routes, *embedding_routes, *admin_routes, *tenant_routes, *operator_routes, *console_routes())
