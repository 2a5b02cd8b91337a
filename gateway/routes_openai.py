"""The OpenAI-compatible surface: completions, models, health.

Handlers read what they need from the :class:`Exchange`, call the services and
return a Reply; errors are raised and answered by the edge.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from backends.base import RequestKind
from gateway import errors
from gateway.context_window import model_context_length
from gateway.edge import Reply, Route, StreamReply
from gateway.endpoints import model_endpoints
from gateway.exchange import Exchange
from gateway.plan import Caller
from gateway.rendering import OpenAIRenderer
from gateway.schemas import ChatCompletionRequest, CompletionRequest, parse_body
from gateway.translate import chat_request, completion_request, response_style

if TYPE_CHECKING:
    from gateway.context import Gateway


async def read_body(x: Exchange, gw: Gateway) -> Any:
    """The request's JSON body within the server's size and complexity limits."""
    server = gw.config.server
    return await x.json(server.max_body_bytes, max_containers=server.max_json_containers)


def caller(x: Exchange, key: Any) -> Caller:
    return Caller(key=key, request_id=x.request_id, received=x.started, arrived_at=time.time() - x.elapsed())


def _completion_endpoint(kind: RequestKind):  # noqa: ANN202 - a handler factory
    schema = ChatCompletionRequest if kind == "chat" else CompletionRequest
    translate = chat_request if kind == "chat" else completion_request
    prefix = "chatcmpl-" if kind == "chat" else "cmpl-"

    async def handle(x: Exchange, gw: Gateway) -> Reply | StreamReply:
        key = await gw.auth.tenant_key(x)
        async with gw.intake.gate(key.id, x.headers.get("content-length")):
            body = parse_body(schema, await read_body(x, gw))
            plan = await gw.planner.plan(
                kind, key, model=body.model, routing=body.routing, stream=body.stream, include_usage=body.include_usage,
                translate=lambda request_id, model: translate(body, request_id, model),  # type: ignore[arg-type]
            )
        renderer = OpenAIRenderer(
            kind, prefix + plan.request.request_id, int(time.time()), plan.model.name,
            include_usage=plan.include_usage, style=response_style(body),
        )
        return await gw.serving.answer(plan, caller(x, key), renderer)

    return handle


def _model_card(gw: Gateway, name: str) -> dict:
    model = gw.catalog.resolve(name)
    assert model is not None
    replicas = gw.registry.for_model(model.name)
    card = {
        "id": name,
        "object": "model",
        "created": gw.started_at,
        "owned_by": "maas-gateway",
        "root": model.name,
        "pricing": {
            "input_per_mtok": str(model.price.input_per_mtok),
            "cached_input_per_mtok": str(model.price.cached_input_per_mtok or model.price.input_per_mtok),
            "output_per_mtok": str(model.price.output_per_mtok),
            "currency": "USD",
        },
        "chips": sorted({r.chip for r in replicas}),
        # the endpoints this model answers (others are a 400 naming the right one)
        "capabilities": list(model_endpoints(model)),
    }
    window = model_context_length(model.max_model_len, (r.backend for r in replicas))
    if window:
        card["max_model_len"] = card["context_length"] = window  # vLLM's name, and OpenRouter's
    return card


async def list_models(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    data = []
    for name in gw.catalog.names():
        model = gw.catalog.resolve(name)
        if model is not None and key.allows(model.name, *model.aliases):
            data.append(_model_card(gw, name))
    return Reply({"object": "list", "data": data})


async def get_model(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    name = x.params["model"]
    model = gw.catalog.resolve(name)
    if model is None or not key.allows(model.name, *model.aliases):
        raise errors.model_not_found(name)
    return Reply(_model_card(gw, name))


async def healthz(x: Exchange, gw: Gateway) -> Reply:
    return Reply({"status": "ok", "uptime_s": round(time.time() - gw.started_at, 1)})


async def readyz(x: Exchange, gw: Gateway) -> Reply:
    """Ready when every model has a replica taking traffic, or pools the fleet starts replicas in
    (a pool scaled to zero must not take the gateway out of its load balancer)."""
    now = time.monotonic()
    pooled = {p.model for p in gw.config.pools}
    models = {}
    for model in gw.catalog.models():
        up = [r.id for r in gw.registry.for_model(model.name) if r.routable(now)]
        models[model.name] = {"ready_replicas": up, "pools": model.name in pooled}
    ready = all(v["ready_replicas"] or v["pools"] for v in models.values())
    return Reply({"ready": ready, "models": models}, status=200 if ready else 503)


async def openapi(x: Exchange, gw: Gateway) -> Reply:
    """The tenant API's OpenAPI document (built once, on first request)."""
    if gw.openapi is None:
        from gateway.openapi import tenant_openapi

        gw.openapi = orjson.dumps(tenant_openapi(_version()))
    return Reply(raw=gw.openapi)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maas-gateway")
    except PackageNotFoundError:
        return "dev"


routes = (
    Route("POST", "/v1/chat/completions", _completion_endpoint("chat"), "chat"),
    Route("POST", "/v1/completions", _completion_endpoint("completion"), "completion"),
    Route("GET", "/v1/models", list_models, "models"),
    Route("GET", "/v1/models/{model:path}", get_model, "models"),
    Route("GET", "/healthz", healthz, "healthz"),
    Route("GET", "/openapi.json", openapi, "openapi"),
    Route("GET", "/readyz", readyz, "readyz"),
)
