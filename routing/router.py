"""The router: pick a replica with the policy, fail over before the first byte.

A retryable :class:`BackendError` before anything reached the caller sends the
request to another replica (never one already tried), up to
``routing.max_attempts`` attempts and ``routing.deadline_s`` in total. A 429 marks
the replica busy for its Retry-After; a rejection (4xx) propagates at once. When
nothing is routable for a new request the router refuses at once with a
Retry-After hint rather than waiting; a request that has failed on a replica
waits for the soonest untried one to be routable again (a breaker's cooldown, a
Retry-After) when that comes before its deadline. After the first chunk of a
stream nothing is retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from backends.base import (
    BackendError,
    Completion,
    EmbeddingRequest,
    Embeddings,
    GenerationRequest,
    StreamChunk,
    UpstreamTimeout,
)
from routing.attempt import Attempt, RoutingObserver
from routing.errors import NoReplicaAvailable, PreferenceUnsatisfiable
from routing.policies.base import Decision, RoutingPolicy
from routing.preferences import chip_matches
from routing.registry import ReplicaRegistry
from routing.replica import Replica, ReplicaState
from routing.route import RouteRequest
from routing.scorecard import Scorecard
from routing.settings import RoutingConfig
from routing.stream import RoutedStream

__all__ = [
    "NoReplicaAvailable",
    "PreferenceUnsatisfiable",
    "RouteRequest",
    "Routed",
    "RoutedStream",
    "Router",
    "RoutingObserver",
]

T = TypeVar("T")


@dataclass(slots=True)
class Routed:
    """A finished non-streaming request and where it ran.

    ``ttft_s`` is None (a non-streaming answer has no first token to time);
    ``replica_seconds`` is this request's share of the replica's busy time.
    """

    result: Completion | Embeddings
    replica: Replica
    attempts: int
    ttft_s: float | None
    latency_s: float
    replica_seconds: float


class Router:
    """Places requests on replicas of the registry using one routing policy."""

    def __init__(
        self,
        registry: ReplicaRegistry,
        policy: RoutingPolicy,
        config: RoutingConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: RoutingObserver | None = None,
        scorecard: Scorecard | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy
        self.config = config
        self.scorecard = scorecard if scorecard is not None else Scorecard()
        self._clock = clock
        self._sleep = sleep
        self._observer = observer

    async def generate(self, request: GenerationRequest, route: RouteRequest) -> Routed:
        """Run a request to completion on some replica, failing over on retryable errors.

        The deadline bounds starting new attempts; a running attempt is bounded
        by its backend's own timeout (a long answer is not a failure).
        """
        started = self._clock()

        async def run(attempt: Attempt) -> Completion:
            result = await attempt.replica.backend.generate(request)
            attempt.succeeded(None if result.usage is None else result.usage.completion_tokens)
            return result

        result, attempt, attempts = await self._place(route, run, started)
        return Routed(result, attempt.replica, attempts, None, self._clock() - started, attempt.replica_seconds)

    async def embed(self, request: EmbeddingRequest, route: RouteRequest) -> Routed:
        """Embed on some replica, through the same failover loop as ``generate``."""
        started = self._clock()

        async def run(attempt: Attempt) -> Embeddings:
            result = await attempt.replica.backend.embed(request)
            attempt.succeeded(0)
            return result

        result, attempt, attempts = await self._place(route, run, started)
        return Routed(result, attempt.replica, attempts, None, self._clock() - started, attempt.replica_seconds)

    async def open_stream(self, request: GenerationRequest, route: RouteRequest) -> RoutedStream:
        """Start a stream and wait for its first chunk, failing over until one arrives.

        The wait for a first chunk is bounded by what is left of the deadline.
        """
        started = self._clock()
        deadline = started + self.config.deadline_s

        async def run(attempt: Attempt) -> tuple[AsyncIterator[StreamChunk], StreamChunk | None]:
            iterator = attempt.replica.backend.stream(request)
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    first: StreamChunk | None = await iterator.__anext__()
            except StopAsyncIteration:
                first = None
            except TimeoutError:
                await _close_quietly(iterator)
                raise UpstreamTimeout(
                    f"replica {attempt.replica.id} sent no first chunk within the routing deadline "
                    f"({self.config.deadline_s:g} s)"
                ) from None
            except BaseException:
                await _close_quietly(iterator)
                raise
            if first is not None:
                attempt.first_token()
            return iterator, first

        (iterator, first), attempt, attempts = await self._place(route, run, started)
        return RoutedStream(attempt, attempts, iterator, first, started=started, clock=self._clock)

    async def _place(
        self, route: RouteRequest, run: Callable[[Attempt], Awaitable[T]], started: float
    ) -> tuple[T, Attempt, int]:
        """The one failover loop: try ``run`` on replicas the policy picks until one succeeds.

        A retryable BackendError moves to another replica (never one already tried)
        within ``max_attempts`` and ``deadline_s``, waiting for one when all untried
        replicas are cooling down or busy; a non-retryable one propagates at once; a
        cancelled caller abandons the attempt. Each attempt ends exactly once.
        """
        deadline = started + self.config.deadline_s
        tried: set[str] = set()
        last_error: BackendError | None = None
        attempts = 0
        while attempts < self.config.max_attempts:
            if attempts and self._clock() >= deadline:
                break
            attempt = self._start_attempt(route, tried, last_error)
            if attempt is None:
                if await self._wait_for_untried(route, tried, deadline):
                    continue
                break
            attempts += 1
            try:
                return await run(attempt), attempt, attempts
            except BackendError as exc:
                attempt.failed(exc)
                if not exc.retryable:
                    raise
                last_error = exc
            except asyncio.CancelledError:
                attempt.abandoned()
                raise
            except Exception:
                attempt.crashed()
                raise
        assert last_error is not None
        raise last_error

    async def _wait_for_untried(self, route: RouteRequest, tried: set[str], deadline: float) -> bool:
        """After a failure, with no untried replica routable now: wait until the soonest one may be
        (its breaker half-open, its Retry-After over) if that comes before the deadline."""
        now = self._clock()
        untried = [r for r in self._matching(route, retrying=True) if r.id not in tried]
        soonest = _soonest(untried, now)
        if soonest is None or soonest <= 0 or now + soonest >= deadline:
            return False
        await self._sleep(soonest)
        return True

    def _start_attempt(
        self, route: RouteRequest, tried: set[str], last_error: BackendError | None
    ) -> Attempt | None:
        """Choose a replica and count the request on it; None when no untried replica
        is routable now after a failure (the caller waits for one, or re-raises that failure)."""
        now = self._clock()
        decision = self.choose(route, now, tried, retrying=last_error is not None)
        if decision is None:
            return None
        replica = decision.replica
        # single-threaded event loop: nothing ran since routable() was checked
        replica.breaker.acquire(now)
        tried.add(replica.id)
        if self._observer is not None:
            self._observer.decision(self.policy.name, replica, decision.reason)
        ticket = replica.telemetry.begin(
            max(0, route.prompt_tokens),
            max(1, route.n),
            predicted_ttft_s=decision.predicted_ttft_s,
            predicted_tpot_s=decision.predicted_tpot_s,
        )
        return Attempt(replica, ticket, clock=self._clock, scorecard=self.scorecard, observer=self._observer)

    def choose(
        self, route: RouteRequest, now: float, tried: set[str] | frozenset[str] = frozenset(), *, retrying: bool = False
    ) -> Decision | None:
        """The routing decision for ``route`` now, without I/O and without counting it
        on the replica (the failover loop does that; a simulation may call this directly).

        Raises NoReplicaAvailable / PreferenceUnsatisfiable when nothing can serve;
        when ``retrying``, returns None instead once no untried replica is left.
        """
        try:
            candidates = self._candidates(route, now, tried, retrying=retrying)
        except NoReplicaAvailable:
            overflow = self._to_standby(route, now, tried)
            if overflow is None:
                if self._observer is not None:
                    self._observer.unserved(route.model)
                raise
            return overflow
        if not candidates:  # retrying, every active replica tried or unroutable: a warm standby fails over too
            return self._to_standby(route, now, tried)
        decision = self.policy.choose(candidates, route, now)
        if decision.reason.startswith("slo unmet"):
            # no active replica meets the SLO: a warm standby takes the overflow, if one is ready
            return self._to_standby(route, now, tried) or decision
        return decision

    def _to_standby(self, route: RouteRequest, now: float, tried: set[str] | frozenset[str]) -> Decision | None:
        """The decision to send ``route`` to a warm standby (overflow); None when none is ready."""
        standby = self._standby(route, now, tried)
        if not standby:
            return None
        decision = self.policy.choose(standby, route, now)
        return Decision(decision.replica, "standby overflow", decision.predicted_ttft_s, decision.predicted_tpot_s)

    def _standby(self, route: RouteRequest, now: float, tried: set[str] | frozenset[str]) -> list[Replica]:
        chips = route.preference.chips
        return [
            r for r in self.registry.for_model(route.model)
            if r.state is ReplicaState.STANDBY and r.id not in tried and r.routable(now, standby=True)
            and (not chips or chip_matches(r.chip, chips))
            and (not route.needs or r.backend.capabilities.covers(route.needs))
        ]

    def _candidates(
        self, route: RouteRequest, now: float, tried: set[str] | frozenset[str], *, retrying: bool
    ) -> list[Replica]:
        matching = self._matching(route, retrying=retrying)
        candidates = [r for r in matching if r.id not in tried and r.routable(now)]
        if candidates or retrying:
            return candidates
        retry_after = _soonest(matching, now)
        if route.preference.chips:
            raise PreferenceUnsatisfiable(
                f"no replica of {route.model!r} on {', '.join(route.preference.chips)} can take a request now",
                status=503,
                retry_after=retry_after,
            )
        raise NoReplicaAvailable(
            f"no replica of {route.model!r} can take a request now", retry_after=retry_after
        )

    def _matching(self, route: RouteRequest, *, retrying: bool) -> list[Replica]:
        """The model's replicas on the preferred chips with the capabilities the request needs,
        routable or not; raises when there are none to begin with (unless ``retrying``)."""
        replicas = self.registry.for_model(route.model)
        if not replicas:
            if retrying:
                return []
            raise NoReplicaAvailable(f"no replica serves model {route.model!r}")
        chips = route.preference.chips
        if chips:
            matching = [r for r in replicas if chip_matches(r.chip, chips)]
            if not matching:
                if retrying:
                    return []
                available = ", ".join(sorted({r.chip for r in replicas}))
                raise PreferenceUnsatisfiable(
                    f"no replica of {route.model!r} runs on {', '.join(chips)}; its chips are: {available}",
                    status=400,
                )
        else:
            matching = replicas
        if route.needs:
            # the plan checked that some replica of the model has them
            matching = [r for r in matching if r.backend.capabilities.covers(route.needs)]
        return matching


def _soonest(replicas: list[Replica], now: float) -> float | None:
    """Seconds until the first of ``replicas`` may be routable again (None: never by itself)."""
    times = [t for r in replicas if (t := r.available_at(now)) is not None]
    if not times:
        return None
    return max(0.0, min(times) - now)


async def _close_quietly(iterator: object) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - the attempt's own error is what matters
            pass

