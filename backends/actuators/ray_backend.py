"""The gateway's side of a replica in a Ray actor: the ``openai`` backend, once the actor serves.

Built before the actor exists (``Actuator.build`` does no I/O), so it learns the
URL when the actuator ``connect``s it. Requests then go over HTTP to the server in
the actor, streamed chunk by chunk on the gateway's event loop, with the same
timeouts, error mapping and failover as any OpenAI-compatible upstream.
Capabilities are those of the backend inside (the in-actor gateway refuses the
rest itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from backends.base import (
    Capabilities,
    Completion,
    EngineStats,
    GenerationRequest,
    ReplicaUnavailable,
    StreamChunk,
)
from backends.openai_upstream import OpenAIUpstreamBackend
from backends.settings import ReplicaConfig


def inner_capabilities(backend: str) -> Capabilities:
    """What the backend inside the actor honours (the class attribute: nothing is started)."""
    if backend == "vllm":
        from backends.vllm_engine import VllmEngineBackend

        return VllmEngineBackend.capabilities
    from backends.simulated import SimulatedBackend

    return SimulatedBackend.capabilities


class ActorBackend:
    """A replica served by a Ray actor, reached over HTTP with the replica's own bearer token."""

    def __init__(self, spec: ReplicaConfig, *, token: str) -> None:
        self.spec = spec
        self.capabilities = inner_capabilities(spec.backend)
        self._token = token
        self._upstream: OpenAIUpstreamBackend | None = None

    @property
    def token(self) -> str:
        return self._token

    async def connect(self, url: str) -> None:
        """The actor serves at ``url``: open the connection pool to it."""
        spec = self.spec
        upstream = OpenAIUpstreamBackend(
            spec.id, url, spec.upstream_model or spec.model, api_key=self._token,
            timeout_s=spec.timeout_s, connect_timeout_s=spec.connect_timeout_s,
        )
        await upstream.start()
        self._upstream = upstream

    def _require(self) -> OpenAIUpstreamBackend:
        if self._upstream is None:
            raise ReplicaUnavailable(f"replica {self.spec.id} is not serving yet")
        return self._upstream

    async def start(self) -> None:
        """Nothing to do: the actuator starts the actor and connects this backend to it."""

    async def close(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            await upstream.close()

    async def generate(self, request: GenerationRequest) -> Completion:
        return await self._require().generate(request)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        chunks = self._require().stream(request)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            # a client that left closes this iterator: the upstream request must end now, not at GC
            await chunks.aclose()  # type: ignore[attr-defined]

    async def health(self) -> bool:
        return self._upstream is not None and await self._upstream.health()

    def stats(self) -> EngineStats:
        return EngineStats() if self._upstream is None else self._upstream.stats()

    def context_length(self) -> int | None:
        return None if self._upstream is None else self._upstream.context_length()
