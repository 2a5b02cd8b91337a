"""The OpenAI-compatible surface: /v1/chat/completions, /v1/completions, /v1/models.

Plain Starlette endpoints (no FastAPI dependency machinery); the two completion
endpoints are raw ASGI apps: the body is read once, parsed by orjson, validated
by pydantic, and the answer sent without a Response object.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from backends.base import RequestKind
from gateway import errors
from gateway.completions import Caller
from gateway.context_window import model_context_length
from gateway.errors import APIError
from gateway.http import ClientGone, error_response, json_response, receive_json, request_id, send_json, unexpected_error
from gateway.schemas import ChatCompletionRequest, CompletionRequest, parse_body
from gateway.sse import SSEResponse

if TYPE_CHECKING:
    from gateway.app import Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


class CompletionEndpoint:
    """``POST /v1/chat/completions`` or ``/v1/completions`` as a raw ASGI app.

    The hot path skips Starlette's request/response wrappers: the body comes
    straight from ``receive`` and JSON answers go straight to ``send``. Every
    answer carries ``x-maas-overhead-ms``: on success the gateway's own time (the
    replica's excluded); on an error, all the time the request spent here.
    """

    def __init__(self, kind: RequestKind) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        kind = self.kind
        request = Request(scope, receive)
        rid = request_id(request)
        gw: Gateway = scope["app"].state.gateway
        try:
            key = await gw.auth.tenant_key(request)
            caller = Caller(key=key, request_id=rid, received=started)
            data = await receive_json(receive, request.headers.get("content-length"), gw.config.server.max_body_bytes)
            body = parse_body(ChatCompletionRequest if kind == "chat" else CompletionRequest, data)
            if body.stream:
                answer = await gw.completions.stream(kind, body, caller)
                await SSEResponse(answer.frames, answer.headers)(scope, receive, send)  # type: ignore[arg-type]
                return
            answer = await gw.completions.complete(kind, body, caller)
        except ClientGone:
            return
        except APIError as exc:
            gw.metrics.refused(kind, exc.status, exc.code or exc.type)
            await _send_error(send, exc, rid, started)
            return
        except Exception as exc:  # noqa: BLE001 - the client must never see a trace
            gw.metrics.refused(kind, 500, "internal_error")
            await unexpected_error(exc, rid)(scope, receive, send)
            return
        await send_json(send, answer.body, answer.status, answer.headers)


async def _send_error(send: Send, exc: APIError, rid: str, started: float) -> None:
    headers = dict(exc.headers)
    headers["x-request-id"] = rid
    headers["x-maas-overhead-ms"] = _overhead(started)
    await send_json(send, exc.body(), exc.status, headers)


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
    window = model_context_length(model.max_model_len, (r.backend for r in replicas))
    if window:
        card["max_model_len"] = card["context_length"] = window  # vLLM's name, and OpenRouter's
    return card


def _allowed(key, gw: Gateway, name: str) -> bool:
    model = gw.catalog.resolve(name)
    return model is not None and key.allows(model.name, *model.aliases)


def _overhead(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.3f}"


async def list_models(request: Request) -> Response:
    started = time.perf_counter()
    rid = request_id(request)
    gw = _gateway(request)
    try:
        key = await gw.auth.tenant_key(request)
        data = [
            _model_card(gw, name)
            for name in gw.catalog.names()
            if _allowed(key, gw, name)
        ]
        return json_response(
            {"object": "list", "data": data}, headers={"x-request-id": rid, "x-maas-overhead-ms": _overhead(started)}
        )
    except APIError as exc:
        exc.headers["x-maas-overhead-ms"] = _overhead(started)
        return error_response(exc, rid)


async def get_model(request: Request) -> Response:
    started = time.perf_counter()
    rid = request_id(request)
    gw = _gateway(request)
    name = request.path_params["model"]
    try:
        key = await gw.auth.tenant_key(request)
        model = gw.catalog.resolve(name)
        if model is None or not key.allows(model.name, *model.aliases):
            raise errors.model_not_found(name)
        return json_response(_model_card(gw, name), headers={"x-request-id": rid, "x-maas-overhead-ms": _overhead(started)})
    except APIError as exc:
        exc.headers["x-maas-overhead-ms"] = _overhead(started)
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


routes = (
    Route("/v1/chat/completions", CompletionEndpoint("chat"), methods=["POST"]),
    Route("/v1/completions", CompletionEndpoint("completion"), methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
)
