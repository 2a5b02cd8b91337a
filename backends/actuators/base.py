"""The actuator protocol: start a replica of a pool, stop one after it has drained."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from backends.base import Backend
from backends.factory import build_backend

if TYPE_CHECKING:
    from backends.settings import PoolConfig, ReplicaConfig


class ActuatorError(Exception):
    """A replica could not be started (the lifecycle counts it and tries again later)."""


@dataclass(slots=True)
class Started:
    """A replica an actuator built: its spec (as served, e.g. with its local URL) and backend.

    ``lost`` is set by actuators that can tell when a running replica dies (its
    node or process gone): it resolves with the reason, and the lifecycle ejects
    the replica at once instead of waiting for failed requests to open its breaker.
    """

    spec: ReplicaConfig
    backend: Backend
    pool: PoolConfig
    lost: asyncio.Future[str] | None = None


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a replica's backend needs to know of its model beyond the pool's template:
    the configured context window and whether the model is an embedding model."""

    max_model_len: Mapping[str, int | None] = field(default_factory=dict)
    embedding_models: frozenset[str] = frozenset()

    def started(self, pool: PoolConfig, spec: ReplicaConfig) -> Started:
        """The replica of ``pool`` served as ``spec``, with its backend built here (not started)."""
        backend = build_backend(
            spec, max_model_len=self.max_model_len.get(spec.model), embedding=spec.model in self.embedding_models
        )
        return Started(spec, backend, pool)


class Actuator(Protocol):
    """Starts and stops replicas of the pools that name it."""

    kind: str
    #: replicas appear by registration (``external``): the lifecycle never calls ``start``
    discovers: bool

    def build(self, pool: PoolConfig, replica_id: str) -> Started:
        """Construct replica ``replica_id`` of ``pool`` from the pool's template (no I/O: the
        lifecycle registers it as starting)."""

    async def start(self, started: Started) -> None:
        """Bring it up; return once it serves (its cold start); ActuatorError on failure.
        A cancelled start is stopped by the caller."""

    async def stop(self, started: Started) -> None:
        """Release a replica that has drained (or never finished starting)."""

    def pid(self, replica_id: str) -> int | None:
        """The local process serving the replica, if this actuator started one."""

    async def close(self) -> None:
        """Release everything this actuator still holds."""
