"""The server inside a Ray replica's actor: this gateway's own app over a one-replica config.

Why the gateway's app rather than a second, smaller OpenAI server: the replica
then speaks exactly the protocol the gateway's ``openai`` backend expects — the
same request validation, translation to the engine, SSE framing, usage in the
last chunk and error shapes — with no second implementation to keep in step.
The replica is the pool's template (an in-process vLLM engine, or a simulated
chip); billing, keys and limits inside are inert (price 0, an SQLite ledger in
a temporary directory, no limits). It listens on the node's address and
answers only requests that carry the replica's own random key, which only the
gateway that placed it knows.

``serve_replica`` is what ``gateway.app`` hands the ``ray`` actuator (pickled by
reference: Ray nodes run the same maas-gateway package).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from backends.actuators.ray_actor import url_host
from backends.settings import ReplicaConfig
from gateway import app as gateway_app
from gateway.config import GatewayConfig, parse_config
from gateway.context import Gateway
from gateway.errors import invalid_key

if TYPE_CHECKING:
    from backends.actuators.base import ModelFacts
    from backends.actuators.ray import RayActuator

#: how long in-flight requests may take to finish when the replica is stopped
_GRACEFUL_S = 10


class _KeyGate:
    """Lets through only HTTP requests that carry ``Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = hashlib.sha256(f"Bearer {token}".encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(hashlib.sha256(given).digest(), self._expected):
                body = invalid_key().body_bytes()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body", "body": body})
                return
            # admitted: the app inside serves it as its anonymous tenant (a key it would look up in its own store)
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"authorization"]}
        await self._app(scope, receive, send)


@dataclass(slots=True)
class ReplicaServer:
    """A replica serving inside an actor."""

    url: str
    gateway: Gateway
    _server: uvicorn.Server
    _task: asyncio.Task[None]
    _workdir: Path

    async def stop(self) -> None:
        self._server.should_exit = True
        try:
            await self._task
        finally:
            try:
                await gateway_app.stop(self.gateway)
            finally:
                shutil.rmtree(self._workdir, ignore_errors=True)


async def serve_replica(
    spec: ReplicaConfig, *, host: str, token: str, max_model_len: int | None,
    max_body_bytes: int = 4 * 1024 * 1024, max_json_containers: int = 50_000,
) -> ReplicaServer:
    """Start the replica's backend and serve it on ``host`` (a free port); raise if it cannot serve."""
    workdir = Path(tempfile.mkdtemp(prefix=f"maas-{spec.id}-"))
    config = parse_config({
        # anonymous: the key gate in front admits only the placing gateway; "remote" because
        # the node's address is not loopback (the gateway is on another machine)
        "server": {"host": host, "port": 0, "allow_anonymous": True, "allow_anonymous_remote": True,
                   "max_body_bytes": max_body_bytes, "max_json_containers": max_json_containers, "log_level": "warning",
                   # the one client is the placing gateway, which gated its tenants' large bodies already
                   "large_bodies_per_key": 4, "large_body_bytes_per_s": 1024 * 1024 * 1024},
        "models": [{"name": spec.model, "max_model_len": max_model_len}],
        "replicas": [spec.model_dump(mode="json", exclude={"pool", "url", "api_key_env", "upstream_model"})],
        "ledger": f"sqlite:///{workdir}/ledger.db",
        # every request comes from one client, the placing gateway, which applied its tenants' limits already
        "limits": {"store": "memory", "per_key": {}, "per_tenant": {}},
    }, env={})
    gw = await gateway_app.build_gateway(config)
    try:
        await gateway_app.start(gw)
        (replica,) = gw.registry.all()
        if not await replica.backend.health():
            raise RuntimeError(f"replica {spec.id}: its {spec.backend} backend did not start (see this worker's log)")
        app = gateway_app.serving_app(gw)
        listener = _listen(host)
        server = uvicorn.Server(uvicorn.Config(
            _KeyGate(app, token), lifespan="on", log_level="warning", timeout_graceful_shutdown=_GRACEFUL_S,
        ))
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[listener]), name=f"serve {spec.id}")
    except BaseException:
        await gateway_app.stop(gw)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    port = listener.getsockname()[1]
    return ReplicaServer(f"http://{url_host(host)}:{port}/v1", gw, server, task, workdir)


def _listen(host: str) -> socket.socket:
    """A listening socket on a free port: connections queue in its backlog until uvicorn accepts them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(1024)
    return listener


def ray_actuator(config: GatewayConfig, models: ModelFacts) -> RayActuator:
    """The ``ray`` actuator, serving each replica with this module (and the gateway's body limits)."""
    from backends.actuators.ray import RayActuator

    serve = functools.partial(serve_replica, max_body_bytes=config.server.max_body_bytes,
                              max_json_containers=config.server.max_json_containers)
    return RayActuator(serve, models)
