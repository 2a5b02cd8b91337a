"""What runs inside Ray: one replica of a pool in an actor, serving the OpenAI protocol over HTTP.

The actor does not know how to serve: the gateway hands it a ``ServeReplica``
(its own app over a one-replica config; ``gateway.replica_server``), so this
package imports nothing of the gateway. ``serve`` returns once the replica
answers; ``until_stopped`` is the liveness call the actuator keeps pending for
the actor's whole life: it ends normally on ``stop`` and fails with Ray's
actor-died error when the actor, its worker process or its node dies.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, Protocol

from backends.settings import ReplicaConfig


class ServedReplica(Protocol):
    """A replica serving inside the actor."""

    #: the OpenAI base URL (``http://node:port/v1``) the gateway sends requests to
    url: str

    async def stop(self) -> None:
        """Stop serving and release the replica's engine."""


class ServeReplica(Protocol):
    """Starts serving one replica on ``host``; requests must carry ``token`` as their bearer key.
    Must pickle by reference (a module-level function, or a partial of one)."""

    def __call__(
        self, spec: ReplicaConfig, *, host: str, token: str, max_model_len: int | None
    ) -> Awaitable[ServedReplica]: ...


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class ReplicaActor:
    """One replica in a Ray actor (the actuator wraps it with ``ray.remote`` and the pool's resources)."""

    def __init__(self, replica_id: str) -> None:
        self._id = replica_id
        self._served: ServedReplica | None = None
        self._stopped = asyncio.Event()

    def __repr__(self) -> str:  # Ray shows it in `ray list actors` and its logs
        return f"ReplicaActor({self._id})"

    async def serve(
        self, serve: ServeReplica, spec: dict[str, Any], token: str, max_model_len: int | None
    ) -> dict[str, Any]:
        """Start the replica and its server on this node; where it serves and where it runs."""
        import ray

        host = ray.util.get_node_ip_address()
        self._served = await serve(ReplicaConfig.model_validate(spec), host=host, token=token,
                                   max_model_len=max_model_len)
        return {"url": self._served.url, "node_id": ray.get_runtime_context().get_node_id(), "node_ip": host,
                "pid": os.getpid()}

    async def until_stopped(self) -> None:
        """Pending while the replica lives; the caller learns of a death by this call failing."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop serving (in-flight requests have drained: the gateway retired the replica first)."""
        try:
            if self._served is not None:
                await self._served.stop()
        finally:
            self._stopped.set()
