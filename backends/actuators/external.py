"""External pools: something else (Kubernetes with KEDA, an operator) starts and stops replicas.

The gateway publishes the desired count per pool (``maas_fleet_desired_replicas``,
``GET /admin/fleet``); replicas that appear register through ``POST
/admin/replicas`` with ``pool`` set and join the pool as active; the lifecycle
drains the ones it wants gone, and the outside system removes them
(``DELETE /admin/replicas/{id}``, e.g. from a pod's preStop hook).
"""

from __future__ import annotations

from backends.actuators.base import ActuatorError, Started
from backends.settings import PoolConfig


class ExternalActuator:
    kind = "external"
    discovers = True

    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        raise ActuatorError(f"pool {pool.name!r} is external: its replicas register themselves")

    async def start(self, started: Started) -> None:
        raise ActuatorError(f"pool {started.pool.name!r} is external: its replicas register themselves")

    async def stop(self, started: Started) -> None:
        # the replica is drained; the outside system that started it removes it
        return None

    def pid(self, replica_id: str) -> int | None:
        return None

    async def close(self) -> None:
        return None
