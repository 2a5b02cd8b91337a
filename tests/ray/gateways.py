"""Gateways with ``ray`` pools, for the Ray tests: their config, and reads of their state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gateway.config import GatewayConfig, parse_config
from tests.live_server import ADMIN_KEY, LiveServer

T = TypeVar("T")
MODEL = "llama-3.1-8b-instruct"


def ray_pool(name: str, chip: str, *, min: int = 1, max: int = 1, backend: str = "simulated",
             time_scale: float = 0.05, cold_start_s: float = 1.0, replica: dict[str, Any] | None = None,
             **ray: Any) -> dict[str, Any]:
    """A pool of ``ray`` replicas (simulated, time-scaled, unless ``backend`` says otherwise)."""
    template = dict(replica or {})
    if backend == "simulated":
        template.setdefault("time_scale", time_scale)
    return {"name": name, "model": MODEL, "chip": chip, "backend": backend, "actuator": "ray", "min": min,
            "max": max, "cold_start_s": cold_start_s, "replica": template, "ray": {"num_cpus": 0.5, **ray}}


def ray_config(tmp_path, pools: list[dict[str, Any]], *, fleet: dict[str, Any] | None = None,
               routing: dict[str, Any] | None = None) -> GatewayConfig:
    return parse_config({
        "server": {"allow_anonymous": True},
        "models": [{"name": MODEL, "aliases": ["default"],
                    "price": {"input_per_mtok": "0.20", "output_per_mtok": "0.60"}}],
        "pools": pools,
        "fleet": {"interval_s": 0.5, **(fleet or {})},
        "routing": {"policy": "round_robin", "health_interval_s": 0.5, "breaker_cooldown_s": 1.0, **(routing or {})},
        "ledger": f"sqlite:///{tmp_path}/ledger.db",
        "limits": "memory",
    }, env={"MAAS_ADMIN_KEY": ADMIN_KEY})


def on_loop(server: LiveServer, read: Callable[[], T]) -> T:
    """Read the gateway's state on its own event loop (it is not thread-safe)."""

    async def run() -> T:
        return read()

    return server.run(run)


def pool_members(server: LiveServer, pool: str) -> list[dict[str, Any]]:
    """The pool's replicas: id, state, and where their actor runs."""
    def read() -> list[dict[str, Any]]:
        lifecycle = server.gateway.lifecycle
        actuator = lifecycle.pools[pool].actuator
        out = []
        for replica in lifecycle.members(pool):
            where = actuator.where(replica.id)  # type: ignore[attr-defined]
            out.append({"id": replica.id, "state": replica.state.value, "node": where and where.node_id,
                        "url": where and where.url})
        return out

    return on_loop(server, read)


def active(server: LiveServer, pool: str) -> list[dict[str, Any]]:
    return [m for m in pool_members(server, pool) if m["state"] == "active"]


def events(server: LiveServer, pool: str | None = None) -> list[dict[str, Any]]:
    return on_loop(server, lambda: [e.to_dict() for e in server.gateway.lifecycle.events
                                    if pool is None or e.pool == pool])
