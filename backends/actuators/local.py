"""Replicas on this machine: in-process vLLM engines, or OpenAI-compatible server processes.

``backend: vllm`` starts an engine in the gateway's process (its load is the cold
start); ``backend: openai`` runs the pool's ``command`` (``{port}`` and ``{model}``
filled in, e.g. vLLM's OpenAI server or ``maas serve`` of a simulated replica) on a
free loopback port and waits until it answers ``/v1/models``; ``backend:
simulated`` starts the double at once. Stopping closes the engine or terminates
the process (killed if it does not exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

from backends.actuators.base import ActuatorError, ModelFacts, Started
from backends.settings import PoolConfig, ReplicaConfig

#: how long a server process may take to answer, at least (its cold start x 5 otherwise)
_MIN_START_TIMEOUT_S = 120.0
_STOP_GRACE_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalActuator:
    kind = "local"
    discovers = False

    def __init__(self, models: ModelFacts | None = None) -> None:
        self._models = models or ModelFacts()
        self._processes: dict[str, asyncio.subprocess.Process] = {}

    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        # a local server listens on a free loopback port of its own
        url = {"url": f"http://127.0.0.1:{_free_port()}/v1"} if pool.backend == "openai" else {}
        return self._models.started(pool, pool.template(replica_id, **url))

    async def start(self, started: Started) -> None:
        if started.pool.backend == "openai":
            await self._start_server(started)
            return
        try:
            await started.backend.start()
        except Exception as exc:  # noqa: BLE001 - reported as a failed start
            raise ActuatorError(f"replica {started.spec.id} failed to start: {exc}") from exc

    async def _start_server(self, started: Started) -> None:
        pool, spec = started.pool, started.spec
        assert pool.command is not None and spec.url is not None
        port = int(spec.url.rsplit(":", 1)[1].split("/", 1)[0])
        argv = [part.format(port=port, model=spec.model) for part in pool.command]
        # engines that pick the host's address must use loopback (see ENVIRONMENT.md)
        env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1"}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActuatorError(f"replica {spec.id}: cannot run {argv[0]!r}: {exc}") from exc
        self._processes[spec.id] = process
        await started.backend.start()
        await self._until_ready(process, started.backend, spec, timeout_s=max(_MIN_START_TIMEOUT_S, 5 * (pool.cold_start_s or 0)))

    @staticmethod
    async def _until_ready(process: asyncio.subprocess.Process, backend: object, spec: ReplicaConfig, *, timeout_s: float) -> None:
        """Poll the new server's health (an outside process: there is no event to await)."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while True:
            if process.returncode is not None:
                raise ActuatorError(f"replica {spec.id}: server exited with {process.returncode} while starting")
            if await backend.health():  # type: ignore[attr-defined]
                return
            if time.monotonic() > deadline:
                raise ActuatorError(f"replica {spec.id}: server not ready after {timeout_s:.0f}s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), delay)
            delay = min(delay * 2, 1.0)

    async def stop(self, started: Started) -> None:
        await started.backend.close()
        process = self._processes.pop(started.spec.id, None)
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    def pid(self, replica_id: str) -> int | None:
        process = self._processes.get(replica_id)
        return None if process is None else process.pid

    async def close(self) -> None:
        for process in list(self._processes.values()):
            if process.returncode is None:
                process.kill()
                await process.wait()
        self._processes.clear()
