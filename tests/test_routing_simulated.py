"""The router over the simulated backend (the labelled test double): real batching,
a replica that dies is routed around, and the default policy fills cheap capacity."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from backends.base import GenerationRequest, Sampling
from backends.chips import chip_profile
from backends.simulated import SimulatedBackend
from gateway.config import RoutingConfig
from routing.breaker import CircuitBreaker
from routing.health import HealthMonitor
from routing.policies import make_policy
from routing.registry import ReplicaRegistry
from routing.replica import Replica
from routing.router import RouteRequest, Router
from routing.telemetry import ReplicaTelemetry

MODEL = "llama-3.1-8b-instruct"


def sim_replica(id: str, chip: str, config: RoutingConfig | None = None) -> Replica:
    config = config or RoutingConfig()
    profile = chip_profile(chip)
    return Replica(
        id,
        MODEL,
        chip,
        profile.cost_per_hour,
        SimulatedBackend(profile, MODEL, time_scale=0.001),
        profile=profile,
        simulated=True,
        telemetry=ReplicaTelemetry.from_config(config),
        breaker=CircuitBreaker.from_config(config),
    )


def gen_request(i: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"r{i}",
        model=MODEL,
        kind="chat",
        sampling=Sampling(max_tokens=16),
        messages=[{"role": "user", "content": f"question {i}"}],
    )


@contextlib.asynccontextmanager
async def pool(*replicas: Replica):
    for r in replicas:
        await r.backend.start()
    try:
        yield ReplicaRegistry(list(replicas))
    finally:
        for r in replicas:
            await r.backend.close()


async def test_killed_replica_is_routed_around_and_requests_still_succeed():
    config = RoutingConfig(breaker_failures=2)
    h100, a100 = sim_replica("h100-0", "nvidia-h100", config), sim_replica("a100-0", "nvidia-a100", config)
    async with pool(h100, a100) as registry:
        router = Router(registry, make_policy("round_robin", slo=config.slo), config)
        h100.backend.kill()
        results = [await router.generate(gen_request(i), RouteRequest(MODEL, 20, 16)) for i in range(6)]
        assert all(r.replica is a100 for r in results)
        assert h100.breaker.state() == "open"
        assert all(r.result.usage.completion_tokens > 0 for r in results)


async def test_health_monitor_takes_a_dead_idle_replica_out_of_routing():
    config = RoutingConfig(breaker_failures=1)
    h100, a100 = sim_replica("h100-0", "nvidia-h100", config), sim_replica("a100-0", "nvidia-a100", config)
    async with pool(h100, a100) as registry:
        monitor = HealthMonitor(registry, config)
        h100.backend.kill()
        await monitor.probe_once()
        assert not h100.routable(h100.breaker.now()) and a100.routable(a100.breaker.now())
        assert a100.telemetry.engine.running == 0


async def test_default_policy_concentrates_concurrent_streams_on_few_replicas():
    replicas = [sim_replica("h100-0", "nvidia-h100"), sim_replica("a100-0", "nvidia-a100"),
                sim_replica("l4-0", "nvidia-l4")]
    async with pool(*replicas) as registry:
        config = RoutingConfig()
        router = Router(registry, make_policy("cost_latency", slo=config.slo), config)

        async def one(i: int) -> str:
            stream = await router.open_stream(gen_request(i), RouteRequest(MODEL, 20, 16))
            async for _ in stream:
                pass
            return stream.replica.id

        used = await asyncio.gather(*(one(i) for i in range(12)))
        # batching is nearly free: the first replica chosen takes the whole burst
        assert len(set(used)) == 1
        rows = router.scorecard.rows()
        assert rows[0]["requests"] == 12 and rows[0]["success_rate"] == 1.0
        assert Decimal(rows[0]["usd_per_mtok_output"]) > 0
