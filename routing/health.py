"""Health monitor: probes every replica's backend on an interval.

A failed (or hung, or raising) probe counts as a breaker failure, so a dead
replica with no traffic is still taken out of routing; a passing probe closes a
half-open breaker. Each round also pulls ``backend.stats()`` into telemetry
(the backend scrapes its own engine; routing does no I/O of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from routing.registry import ReplicaRegistry
from routing.replica import Replica, ReplicaState
from routing.settings import RoutingConfig


class HealthMonitor:
    """Background task probing replicas every ``config.health_interval_s``."""

    def __init__(
        self,
        registry: ReplicaRegistry,
        config: RoutingConfig,
        clock: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    async def start(self) -> None:
        """Start probing in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="routing-health")

    async def stop(self) -> None:
        """Stop probing and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def probe_once(self) -> dict[str, bool]:
        """Probe every replica once, concurrently; returns id -> healthy.

        A starting replica is skipped: it is not routed to, its actuator says when it
        serves, and failed probes while it loads would leave its breaker open when it does.
        """
        replicas = [r for r in self.registry.all() if r.state is not ReplicaState.STARTING]
        results = await asyncio.gather(*(self._probe(r) for r in replicas))
        self.rounds += 1
        return {r.id: ok for r, ok in zip(replicas, results, strict=True)}

    async def _run(self) -> None:
        while True:
            await self.probe_once()
            await self._sleep(self.config.health_interval_s)

    async def _probe(self, replica: Replica) -> bool:
        try:
            # a probe that hangs past the interval is as bad as one that fails
            async with asyncio.timeout(self.config.health_interval_s):
                healthy = bool(await replica.backend.health())
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - any probe error means "not healthy"
            healthy = False
        now = self._clock()
        if healthy:
            replica.breaker.probe_succeeded(now)
        else:
            replica.breaker.record_failure(now)
        try:
            replica.telemetry.record_engine(replica.backend.stats())
        except Exception:  # noqa: BLE001 - stale stats are better than a dead monitor
            pass
        return healthy
