"""An actuator whose replicas die when the test says so (what the ``ray`` actuator sees of a dead node)."""

from __future__ import annotations

import asyncio

from backends.actuators.base import Started
from backends.factory import build_backend
from backends.settings import PoolConfig


class MortalActuator:
    """Simulated replicas, started at once; ``kill(id)`` resolves a running one's ``lost``."""

    kind = "simulated"
    discovers = False

    def __init__(self) -> None:
        self.running: dict[str, Started] = {}
        self.stopped: list[str] = []
        self._changed = asyncio.Event()

    async def until_running(self, count: int) -> None:
        """Until ``count`` replicas have started (the lifecycle marks each ready as its start returns)."""
        while len(self.running) < count:
            self._changed.clear()
            await self._changed.wait()

    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        spec = pool.template(replica_id)
        return Started(spec, build_backend(spec), pool)

    async def start(self, started: Started) -> None:
        await started.backend.start()
        started.lost = asyncio.get_running_loop().create_future()
        self.running[started.spec.id] = started
        self._changed.set()

    def kill(self, replica_id: str) -> None:
        started = self.running[replica_id]
        assert started.lost is not None
        started.lost.set_result("The actor died because its node has died.")

    async def stop(self, started: Started) -> None:
        self.running.pop(started.spec.id, None)
        self.stopped.append(started.spec.id)
        await started.backend.close()

    def pid(self, replica_id: str) -> int | None:
        return None

    async def close(self) -> None:
        return None
