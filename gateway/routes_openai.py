"""The OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models.

Plain Starlette endpoints (no FastAPI dependency machinery) on the hot path:
the body is read once, parsed by orjson, validated by pydantic.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backends.base import RequestKind
from gateway import errors
from gateway.completions import Caller
from gateway.errors import APIError
from gateway.http import error_response, json_response, read_json, request_id, unexpected_error
from gateway.schemas import ChatCompletionRequest, CompletionRequest, parse_body
from gateway.sse import SSEResponse

if TYPE_CHECKING:
    from gateway.app import Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def _complete(request: Request, kind: RequestKind) -> Response:
    rid = request_id(request)
    gw = _gateway(request)
    caller = None
    try:
        key = await gw.auth.tenant_key(request)
        caller = Caller(key=key, request_id=rid)
        data = await read_json(request, gw.config.server.max_body_bytes)
        body = parse_body(ChatCompletionRequest if kind == "chat" else CompletionRequest, data)
        if body.stream:
            answer = await gw.completions.stream(kind, body, caller)
            return SSEResponse(answer.frames, answer.headers)  # type: ignore[arg-type,return-value]
        answer = await gw.completions.complete(kind, body, caller)
        return json_response(answer.body, answer.status, answer.headers)
    except APIError as exc:
        gw.metrics.errors.labels(kind, str(exc.status), exc.code or exc.type).inc()
        return error_response(exc, rid)
    except Exception as exc:  # noqa: BLE001 - the client must never see a trace
        gw.metrics.errors.labels(kind, "500", "internal_error").inc()
        return unexpected_error(exc, rid)


async def chat_completions(request: Request) -> Response:
    return await _complete(request, "chat")


async def completions(request: Request) -> Response:
    return await _complete(request, "completion")


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
    }
    if model.max_model_len:
        card["max_model_len"] = model.max_model_len
    return card


def _allowed(key, gw: Gateway, name: str) -> bool:
    model = gw.catalog.resolve(name)
    return model is not None and key.allows(model.name, *model.aliases)


async def list_models(request: Request) -> Response:
    rid = request_id(request)
    gw = _gateway(request)
    try:
        key = await gw.auth.tenant_key(request)
        data = [
            _model_card(gw, name)
            for name in gw.catalog.names()
            if _allowed(key, gw, name)
        ]
        return json_response({"object": "list", "data": data}, headers={"x-request-id": rid})
    except APIError as exc:
        return error_response(exc, rid)


async def get_model(request: Request) -> Response:
    rid = request_id(request)
    gw = _gateway(request)
    name = request.path_params["model"]
    try:
        key = await gw.auth.tenant_key(request)
        model = gw.catalog.resolve(name)
        if model is None or not key.allows(model.name, *model.aliases):
            raise errors.model_not_found(name)
        return json_response(_model_card(gw, name), headers={"x-request-id": rid})
    except APIError as exc:
        return error_response(exc, rid)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok", "uptime_s": round(time.time() - _gateway(request).started_at, 1)})


async def readyz(request: Request) -> Response:
    """Ready when every configured model has at least one replica taking traffic."""
    gw = _gateway(request)
    now = time.monotonic()
    models = {}
    for model in gw.catalog.models():
        up = [r.id for r in gw.registry.for_model(model.name) if r.routable(now)]
        models[model.name] = {"ready_replicas": up}
    ready = all(v["ready_replicas"] for v in models.values())
    return json_response({"ready": ready, "models": models}, status=200 if ready else 503)


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
