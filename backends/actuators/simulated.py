"""Simulated replicas in this process, with a cold start: the test double for chips these machines lack.

The cold start is the pool's ``cold_start_s`` (default: the chip's cited figure),
scaled by the replica's ``time_scale`` like every other timing of the double.
Waiting it out is the simulation, not a stand-in for an event.
"""

from __future__ import annotations

import asyncio

from backends.actuators.base import ActuatorError, ModelFacts, Started
from backends.chips import CHIPS
from backends.settings import PoolConfig


class SimulatedActuator:
    kind = "simulated"
    discovers = False

    def __init__(self, models: ModelFacts | None = None) -> None:
        self._models = models or ModelFacts()

    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        return self._models.started(pool, pool.template(replica_id))

    async def start(self, started: Started) -> None:
        profile = CHIPS.get(started.pool.chip)
        cold = started.pool.cold_start_s
        if cold is None:
            cold = profile.cold_start_s if profile is not None else 0.0
        await asyncio.sleep(cold * started.spec.time_scale)
        try:
            await started.backend.start()
        except Exception as exc:  # noqa: BLE001 - reported as a failed start
            raise ActuatorError(f"simulated replica {started.spec.id} failed to start: {exc}") from exc

    async def stop(self, started: Started) -> None:
        await started.backend.close()

    def pid(self, replica_id: str) -> int | None:
        return None

    async def close(self) -> None:
        return None
