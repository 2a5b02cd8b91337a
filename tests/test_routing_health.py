"""Health monitor: failing probes open breakers, passing ones close half-open ones."""

from __future__ import annotations

import asyncio

from backends.base import EngineStats
from gateway.config import RoutingConfig
from routing.health import HealthMonitor
from routing.registry import ReplicaRegistry
from routing.replica import ReplicaState
from tests.fakes.routing import FakeClock, ScriptedBackend, make_replica


class HangingHealth(ScriptedBackend):
    async def health(self) -> bool:
        await asyncio.sleep(10)
        return True


async def test_failing_probes_count_as_breaker_failures_until_it_opens():
    clock = FakeClock()
    dead = make_replica("dead", backend=ScriptedBackend(healthy=False), clock=clock, breaker_failures=2)
    monitor = HealthMonitor(ReplicaRegistry([dead]), RoutingConfig(), clock)
    assert await monitor.probe_once() == {"dead": False}
    assert dead.breaker.state() == "closed"
    await monitor.probe_once()
    assert dead.breaker.state() == "open"
    assert not dead.routable(clock.now)


async def test_starting_replica_is_not_probed_so_it_serves_with_a_closed_breaker():
    clock = FakeClock()
    loading = make_replica("loading", backend=ScriptedBackend(healthy=False), clock=clock, breaker_failures=1)
    loading.state = ReplicaState.STARTING
    monitor = HealthMonitor(ReplicaRegistry([loading]), RoutingConfig(), clock)
    assert await monitor.probe_once() == {}
    loading.state = ReplicaState.ACTIVE  # its actuator says it serves
    assert loading.breaker.state() == "closed" and loading.routable(clock.now)


async def test_probe_that_raises_or_hangs_is_unhealthy():
    clock = FakeClock()
    raising = make_replica("raising", backend=ScriptedBackend(healthy=ConnectionError("refused")), clock=clock)
    hanging = make_replica("hanging", backend=HangingHealth(), clock=clock)
    monitor = HealthMonitor(ReplicaRegistry([raising, hanging]), RoutingConfig(health_interval_s=0.02), clock)
    assert await asyncio.wait_for(monitor.probe_once(), 2) == {"raising": False, "hanging": False}


async def test_passing_probe_closes_a_half_open_breaker():
    clock = FakeClock()
    replica = make_replica("a", clock=clock, breaker_failures=1, cooldown_s=5)
    replica.breaker.record_failure()
    monitor = HealthMonitor(ReplicaRegistry([replica]), RoutingConfig(), clock)
    await monitor.probe_once()
    assert replica.breaker.state() == "open"
    clock.advance(5)
    await monitor.probe_once()
    assert replica.breaker.state() == "closed"


async def test_probe_pulls_engine_stats_into_telemetry():
    clock = FakeClock()
    backend = ScriptedBackend(engine=EngineStats(running=7, waiting=3, kv_cache_usage=0.4))
    replica = make_replica("a", backend=backend, clock=clock)
    await HealthMonitor(ReplicaRegistry([replica]), RoutingConfig(), clock).probe_once()
    assert replica.telemetry.engine.running == 7
    assert replica.telemetry.outstanding_sequences() == 10


async def test_started_monitor_probes_every_interval_until_stopped():
    replica = make_replica("a")
    naps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        naps.append(seconds)
        await asyncio.sleep(0)

    monitor = HealthMonitor(ReplicaRegistry([replica]), RoutingConfig(health_interval_s=2.5), sleep=fake_sleep)
    await monitor.start()
    for _ in range(20):
        await asyncio.sleep(0)
    await monitor.stop()
    assert monitor.rounds >= 3
    assert set(naps) == {2.5}
    assert replica.backend.health_checks == monitor.rounds
