"""The one HTTP edge: every request and every error of the gateway passes here.

A plain ASGI app over a route table (``gateway.routes``). For each request it
finds the route, hands the handler an :class:`Exchange` (request id, headers,
body, timing) and sends what the handler returns — a :class:`Reply` (JSON) or a
:class:`StreamReply` (server-sent events) — adding ``x-request-id`` and
``x-maas-overhead-ms`` the same way to both. Any exception a handler raises is
turned into one error body by one table (``gateway.error_map``), in OpenAI's
shape or, on the Anthropic surface, Anthropic's. Handlers never build responses
for errors and never catch domain errors themselves.

Why not FastAPI's stack for this: each of its middleware layers (server errors,
exception handlers, exit stacks) and its request/response objects cost CPU on
every request, and errors were mapped in three places. One ASGI layer keeps the
hot path short and the error mapping in one place; pydantic still validates
every body, and the OpenAPI document is built from the same schemas.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import orjson
from starlette.types import Receive, Scope, Send

from gateway.error_map import is_expected, to_api_error
from gateway.errors import APIError
from gateway.exchange import ClientGone, Exchange, RequestIds
from gateway.route_table import Route, RouteTable
from gateway.sse import stream_frames

log = logging.getLogger("maas.edge")

__all__ = ["Edge", "EdgeObserver", "Exchange", "Reply", "Route", "StreamReply"]


@dataclass(slots=True)
class Reply:
    """A complete answer: a JSON-able ``body`` (or ``raw`` bytes of ``content_type``).

    ``upstream_s`` is time spent waiting for a replica, left out of the overhead.
    """

    body: Any = None
    status: int = 200
    headers: Mapping[str, str] | None = None
    raw: bytes | None = None
    content_type: str = "application/json"
    upstream_s: float = 0.0


@dataclass(slots=True)
class StreamReply:
    """A stream of already-encoded SSE frames; the frames' producer handles its own
    errors after the first byte (the status line is gone by then)."""

    frames: AsyncIterator[bytes]
    headers: Mapping[str, str]
    upstream_s: float = 0.0


class EdgeObserver(Protocol):
    """What the edge reports (the gateway's metrics implement it)."""

    def overhead(self, endpoint: str, seconds: float) -> None:
        """Gateway time of an answered request (replica time excluded)."""

    def refused(self, endpoint: str, error: APIError, cause: BaseException) -> None:
        """A request answered with an error before any response byte."""


_JSON = b"application/json"


class Edge:
    """The ASGI application: routes, lifespan, headers, errors.

    ``lifespan`` is an async context manager factory yielding the object every
    handler receives as its second argument (the wired gateway); it is also kept
    as ``state.gateway``.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        lifespan: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
        observer: Callable[[Any], EdgeObserver | None] = lambda context: None,
        cors_origins: Sequence[str] = (),
    ) -> None:
        self._table = RouteTable(routes)
        self._cors = frozenset(cors_origins)
        self._ids = RequestIds()
        self._lifespan = lifespan
        self._observer_of = observer
        self._observer: EdgeObserver | None = None
        self.state = SimpleNamespace(gateway=None)
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._run_lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = Exchange(scope, receive, send, self._ids)
        if self._cors:
            origin = exchange.headers.get("origin")
            if origin in self._cors:
                send = exchange.send = _with_cors(send, origin)
                if scope["method"] == "OPTIONS" and "access-control-request-method" in exchange.headers:
                    await _preflight(exchange)
                    return
        route: Route | None = None
        try:
            route, exchange.params = self._table.match(scope["method"], scope["path"])
            reply = await route.handler(exchange, self.state.gateway)
            if type(reply) is Reply:
                await self._send_reply(exchange, route, reply)
            else:
                await self._send_stream(exchange, route, reply)
        except ClientGone:
            return
        except Exception as exc:  # noqa: BLE001 - every failure becomes one error body
            if exchange.responded:
                log.error("request %s failed after its response started", exchange.request_id, exc_info=exc)
                return
            await self._send_error(exchange, route, exc)

    async def _send_reply(self, exchange: Exchange, route: Route, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else orjson.dumps(reply.body)
        overhead = exchange.elapsed() - reply.upstream_s
        if self._observer is not None:
            self._observer.overhead(route.name, overhead)
        headers = [
            (b"content-length", b"%d" % len(payload)),
            (b"content-type", _JSON if reply.content_type == "application/json" else reply.content_type.encode()),
            (b"x-request-id", exchange.request_id.encode()),
            (b"x-maas-overhead-ms", b"%.3f" % (max(0.0, overhead) * 1000)),
        ]
        if reply.headers:
            headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        await exchange.start(reply.status, headers)
        await exchange.send({"type": "http.response.body", "body": payload})

    async def _send_stream(self, exchange: Exchange, route: Route, reply: StreamReply) -> None:
        # the overhead a streaming client feels is the time to its first byte
        overhead = exchange.elapsed() - reply.upstream_s
        if self._observer is not None:
            self._observer.overhead(route.name, overhead)
        headers = [
            (b"x-request-id", exchange.request_id.encode()),
            (b"x-maas-overhead-ms", b"%.3f" % (max(0.0, overhead) * 1000)),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()),
        ]
        await stream_frames(exchange, reply.frames, headers)

    async def _send_error(self, exchange: Exchange, route: Route | None, exc: Exception) -> None:
        error = to_api_error(exc)
        if not is_expected(exc):
            log.error("unhandled error in request %s", exchange.request_id, exc_info=exc)
        if self._observer is not None:
            self._observer.refused(route.name if route else "unknown", error, exc)
        style = route.errors if route is not None else "openai"
        payload = error.body_bytes() if style == "openai" else error.anthropic_body_bytes()
        headers = [
            (b"content-length", b"%d" % len(payload)),
            (b"content-type", _JSON),
            (b"x-request-id", exchange.request_id.encode()),
            (b"x-maas-overhead-ms", b"%.3f" % (exchange.elapsed() * 1000)),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
        ]
        with contextlib.suppress(OSError):
            await exchange.start(error.status, headers)
            await exchange.send({"type": "http.response.body", "body": payload})

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        manager = self._lifespan()
        try:
            self.state.gateway = await manager.__aenter__()
            self._observer = self._observer_of(self.state.gateway)
        except BaseException as exc:  # noqa: BLE001 - reported to the server, which exits
            log.error("gateway failed to start", exc_info=exc)
            await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await manager.__aexit__(None, None, None)
        except BaseException as exc:  # noqa: BLE001
            log.error("gateway failed to stop cleanly", exc_info=exc)
            await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})



#: what a browser on an allowed origin may send (preflight answers)
_CORS_ALLOW = (
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, x-api-key, x-request-id, anthropic-version"),
    (b"access-control-max-age", b"600"),
)
_CORS_EXPOSE = (
    b"x-request-id, x-maas-replica, x-maas-chip, x-maas-cost-usd, x-maas-overhead-ms, x-maas-simulated, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-limit-tokens, "
    b"x-ratelimit-remaining-tokens, retry-after"
)


def _with_cors(send: Send, origin: str) -> Send:
    """Adds the CORS response headers for an allowed ``origin`` (no credentials: keys travel in headers)."""
    allow = origin.encode("latin-1")

    async def cors_send(message: dict) -> None:  # type: ignore[type-arg]
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message["headers"], (b"access-control-allow-origin", allow), (b"vary", b"origin"),
                (b"access-control-expose-headers", _CORS_EXPOSE),
            ]
        await send(message)

    return cors_send  # type: ignore[return-value]


async def _preflight(exchange: Exchange) -> None:
    await exchange.start(204, [*_CORS_ALLOW, (b"content-length", b"0")])
    await exchange.send({"type": "http.response.body", "body": b""})
