"""A real gateway on a real port, in a thread with its own event loop.

Tests drive it over HTTP (openai SDK, httpx) exactly as a client would, and can
reach into the running gateway (kill a replica, read the ledger) through
``run()``, which executes a coroutine on the server's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn

from gateway.app import Gateway, create_app
from gateway.config import GatewayConfig, parse_config

T = TypeVar("T")

ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789"


def sim_config(tmp_path, **overrides: Any) -> GatewayConfig:
    """A small simulated pool (fast: time_scale shrinks the chips' real timings)."""
    data: dict[str, Any] = {
        "server": {"allow_anonymous": False},
        "models": [
            {
                "name": "llama-3.1-8b-instruct",
                "aliases": ["default", "llama-8b"],
                "price": {"input_per_mtok": "0.20", "cached_input_per_mtok": "0.10", "output_per_mtok": "0.60"},
            },
            {"name": "other-model", "price": {"input_per_mtok": "1", "output_per_mtok": "2"}},
        ],
        "replicas": [
            {"id": "h100-0", "model": "llama-3.1-8b-instruct", "backend": "simulated", "chip": "nvidia-h100", "time_scale": 0.02},
            {"id": "l4-0", "model": "llama-3.1-8b-instruct", "backend": "simulated", "chip": "nvidia-l4", "time_scale": 0.02},
            {"id": "ascend-0", "model": "llama-3.1-8b-instruct", "backend": "simulated", "chip": "ascend-910b", "time_scale": 0.02},
            {"id": "kunlun-0", "model": "llama-3.1-8b-instruct", "backend": "simulated", "chip": "kunlun-p800", "time_scale": 0.02},
            {"id": "other-0", "model": "other-model", "backend": "simulated", "chip": "nvidia-a100", "time_scale": 0.02},
        ],
        "routing": {"policy": "round_robin", "health_interval_s": 0.5, "breaker_cooldown_s": 1.0},
        "ledger": f"sqlite:///{tmp_path}/ledger.db",
        "limits": "memory",
    }
    for key, value in overrides.items():
        data[key] = value
    return parse_config(data, env={"MAAS_ADMIN_KEY": ADMIN_KEY})


class LiveServer:
    """uvicorn serving ``create_app(config)`` on 127.0.0.1 at a free port."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Gateway:
        return self.app.state.gateway

    def start(self, timeout: float = 60.0) -> LiveServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, loop="asyncio", http="httptools", log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve(ready))

        self._thread = threading.Thread(target=run, name="live-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    async def _serve(self, ready: threading.Event) -> None:
        assert self._server is not None
        task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if task.done():
                task.result()
                return
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        ready.set()
        await task

    def run(self, fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def create_key(self, tenant: str = "acme", **kw: Any) -> str:
        async def create() -> str:
            _, secret = await self.gateway.db.keys.create(tenant, **kw)
            return secret

        return self.run(create)
