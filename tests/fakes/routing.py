"""Test doubles shared by the routing tests (this module holds no tests itself)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from backends.base import (
    Capabilities,
    Choice,
    ChoiceDelta,
    Completion,
    EngineStats,
    GenerationRequest,
    StreamChunk,
    Usage,
)
from routing.breaker import CircuitBreaker
from routing.replica import Replica
from routing.telemetry import ReplicaTelemetry


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class LinearProfile:
    """Chip profile with the simulator's linear step-time model."""

    prefill_tok_s: float = 10_000.0
    step_1_s: float = 0.010
    step_32_s: float = 0.020
    max_batch: int = 64

    def step_time_s(self, batch: int) -> float:
        b = max(1, min(batch, self.max_batch))
        return self.step_1_s + (b - 1) * (self.step_32_s - self.step_1_s) / 31

    def prefill_time_s(self, tokens: int) -> float:
        return tokens / self.prefill_tok_s


def completion(text: str = "hello", tokens: int = 2) -> Completion:
    return Completion([Choice(0, text, "stop")], Usage(prompt_tokens=5, completion_tokens=tokens))


@dataclass
class ScriptedBackend:
    """A backend whose answers are scripted: each call pops the next outcome.

    An outcome is an exception (raised before any output), a Completion, or for
    streams a list of chunks in which an exception item is raised at that point.
    """

    outcomes: list[object] = field(default_factory=list)
    default: object = None
    healthy: bool = True
    engine: EngineStats = field(default_factory=EngineStats)
    first_chunk_delay_s: float = 0.0
    capabilities: Capabilities = field(default_factory=Capabilities)
    calls: int = 0
    closed_streams: int = 0
    health_checks: int = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _next(self) -> object:
        self.calls += 1
        if self.outcomes:
            return self.outcomes.pop(0)
        return self.default if self.default is not None else completion()

    async def generate(self, request: GenerationRequest) -> Completion:
        outcome = self._next()
        await asyncio.sleep(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, list):
            raise AssertionError("stream outcome given to generate")
        assert isinstance(outcome, Completion)
        return outcome

    def context_length(self) -> int | None:
        return None

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        outcome = self._next()
        return self._stream(outcome)

    async def _stream(self, outcome: object) -> AsyncIterator[StreamChunk]:
        try:
            if self.first_chunk_delay_s:
                await asyncio.sleep(self.first_chunk_delay_s)
            if isinstance(outcome, BaseException):
                raise outcome
            items = outcome if isinstance(outcome, list) else default_chunks()
            for item in items:
                await asyncio.sleep(0)
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.closed_streams += 1

    async def health(self) -> bool:
        self.health_checks += 1
        if isinstance(self.healthy, BaseException):
            raise self.healthy
        return self.healthy

    def stats(self) -> EngineStats:
        return self.engine


def default_chunks(words: int = 3) -> list[StreamChunk]:
    chunks = [StreamChunk([ChoiceDelta(0, f"w{i} ", tokens=1)]) for i in range(words)]
    chunks.append(
        StreamChunk([ChoiceDelta(0, "", finish_reason="stop")], Usage(prompt_tokens=5, completion_tokens=words))
    )
    return chunks


def make_replica(
    id: str,
    *,
    backend: object | None = None,
    chip: str = "nvidia-h100",
    cost: str = "2.00",
    model: str = "m",
    profile: object | None = None,
    clock: FakeClock | None = None,
    breaker_failures: int = 3,
    cooldown_s: float = 5.0,
) -> Replica:
    clock = clock or FakeClock()
    return Replica(
        id,
        model,
        chip,
        Decimal(cost),
        backend if backend is not None else ScriptedBackend(),  # type: ignore[arg-type]
        profile=profile,  # type: ignore[arg-type]
        simulated=True,
        telemetry=ReplicaTelemetry(alpha=0.5, clock=clock),
        breaker=CircuitBreaker(breaker_failures, cooldown_s, clock=clock),
    )


def request(request_id: str = "req-1") -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id, model="m", kind="chat", messages=[{"role": "user", "content": "hi"}]
    )
