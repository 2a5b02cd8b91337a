"""Deterministic discrete-event simulation of a fleet whose replicas start and stop.

Extends ``loadtests.routing_sim`` (the same ``SimEngine`` per replica) with the
replica lifecycle. A controller (one fleet strategy) says how many replicas each
pool should have active and on standby; the simulation starts replicas
(``starting`` for the pool's cold start: paid, serving nothing), wakes standby
ones (``standby -> active`` after ``wake_s``), and drains surplus ones
(``draining`` until their engine is empty, then ``stopped``). Requests are placed
by the service's own ``Router.choose`` with a policy from ``make_policy``, over a
``ReplicaRegistry`` of the replicas not stopped, as the gateway routes them.

Cost is what the operator pays: seconds in every state but ``stopped`` x $/hour,
counted over the load period ``[0, duration_s]``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from backends.chips import ChipProfile
from loadtests.routing_sim import MODEL, ROUTE_MAX_TOKENS, SimClock, SimEngine, SimSequence, TraceRequest
from routing.breaker import CircuitBreaker
from routing.errors import NoReplicaAvailable
from routing.fleet.pools import PoolSpec, PoolStatus
from routing.policies import make_policy
from routing.registry import ReplicaRegistry
from routing.fleet.reconcile import Member, reconcile
from routing.replica import Replica, ReplicaState
from routing.route import RouteRequest
from routing.router import Router
from routing.settings import SLO, RoutingConfig
from routing.telemetry import ReplicaTelemetry

#: vLLM sleep mode wakes a replica in well under a second (vLLM blog "sleep mode",
#: 2025-10; Embedded LLM's post measured 0.1-0.4 s): one second, to be safe
WAKE_S = 1.0

Targets = Mapping[str, tuple[int, int]]


class FleetView(Protocol):
    """What a controller may read about the fleet."""

    def statuses(self) -> dict[str, PoolStatus]: ...

    def active(self, pool: str) -> list[Replica]: ...


class FleetController(Protocol):
    """One fleet strategy: the initial fleet, and (active, standby) targets per pool."""

    name: str
    policy: str
    #: seconds between ticks (None: never ticks, a static fleet)
    tick_s: float | None

    def initial(self) -> Mapping[str, int]:
        """Replicas per pool already active at time 0."""
        ...

    def observe(self, now: float, prompt_tokens: int, output_tokens: int) -> None:
        """One arrival."""
        ...

    def tick(self, now: float, fleet: FleetView) -> Targets | None:
        """New targets per pool, or None to keep the current ones."""
        ...

    def overloaded(self, now: float, fleet: FleetView) -> Targets | None:
        """The router found nothing meeting the SLO (or nothing routable)."""
        ...


@dataclass(eq=False)
class _Member:
    replica: Replica
    engine: SimEngine
    pool: str
    since: float
    destination: ReplicaState = ReplicaState.ACTIVE
    paid_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The fleet at one moment: load, paid replicas per chip, $/hour."""

    t: float
    arrivals_rps: float
    replicas_by_chip: dict[str, int]
    cost_per_hour: float


@dataclass
class FleetResult:
    """What one strategy's run measured."""

    strategy: str
    policy: str
    ttft_s: list[float]
    tpot_s: list[float]
    failed: int
    output_tokens: int
    cost_usd: Decimal
    paid_s_by_chip: dict[str, float]
    state_s: dict[str, float]
    starts_by_chip: Counter[str]
    stops_by_chip: Counter[str]
    reasons: Counter[str]
    samples: list[Sample]
    duration_s: float
    notes: list[str] = field(default_factory=list)


class FleetSimulation:
    """One run of one controller over one trace (build a fresh one per run)."""

    def __init__(
        self, pools: Sequence[PoolSpec], controller: FleetController, slo: SLO, *, duration_s: float,
        wake_s: float = WAKE_S,
    ) -> None:
        self.pools = {p.name: p for p in pools}
        self.controller = controller
        self.slo = slo
        self.duration_s = duration_s
        self.wake_s = wake_s
        self.clock = SimClock()
        self.policy = make_policy(controller.policy, slo=slo)
        self.config = RoutingConfig(slo=slo)
        self.members: dict[str, _Member] = {}
        self.targets: dict[str, tuple[int, int]] = {}
        self._ids = itertools.count()
        self._order = itertools.count()
        self._events: list[tuple[float, int, int, object]] = []
        self.starts: Counter[str] = Counter()
        self.stops: Counter[str] = Counter()
        self.state_s: Counter[str] = Counter()
        self._closed: list[_Member] = []
        self.router = self._router()

    # -- FleetView ---------------------------------------------------------
    def statuses(self) -> dict[str, PoolStatus]:
        counts: dict[str, Counter[ReplicaState]] = {name: Counter() for name in self.pools}
        for m in self.members.values():
            counts[m.pool][m.replica.state] += 1
        return {
            name: PoolStatus(
                starting=c[ReplicaState.STARTING], active=c[ReplicaState.ACTIVE],
                standby=c[ReplicaState.STANDBY], draining=c[ReplicaState.DRAINING],
            )
            for name, c in counts.items()
        }

    def active(self, pool: str) -> list[Replica]:
        return [m.replica for m in self.members.values() if m.pool == pool and m.replica.state is ReplicaState.ACTIVE]

    # -- lifecycle -----------------------------------------------------------
    def _router(self) -> Router:
        # the gateway's registry holds what is not stopped; rebuilt on membership changes
        return Router(ReplicaRegistry([m.replica for m in self.members.values()]), self.policy, self.config,
                      clock=self.clock)

    def _push(self, when: float, kind: int, payload: object) -> None:
        heapq.heappush(self._events, (when, next(self._order), kind, payload))

    def _set_state(self, member: _Member, state: ReplicaState) -> None:
        now = self.clock.now
        old = member.replica.state
        spent = max(0.0, min(now, self.duration_s) - min(member.since, self.duration_s))
        self.state_s[old.value] += spent
        if old is not ReplicaState.STOPPED:
            member.paid_s += spent
        member.replica.state = state
        member.since = now

    def _start(self, pool: str, destination: ReplicaState, *, warm: bool = False) -> None:
        spec = self.pools[pool]
        profile = spec.profile
        assert isinstance(profile, ChipProfile)
        replica = Replica(
            f"{pool}-{next(self._ids)}", MODEL, spec.chip, spec.cost_per_hour, backend=None,  # type: ignore[arg-type]
            profile=profile, simulated=True,
            telemetry=ReplicaTelemetry(alpha=0.2, clock=self.clock),
            breaker=CircuitBreaker(3, 5.0, clock=self.clock),
        )
        member = _Member(replica, SimEngine(replica, profile), pool, self.clock.now, destination)
        self.members[replica.id] = member
        if warm:
            replica.state = destination
        else:
            replica.state = ReplicaState.STARTING
            self.starts[spec.chip] += 1
            self._push(self.clock.now + spec.cold_start_s, 1, member)
        self.router = self._router()

    def _stop(self, member: _Member) -> None:
        self._set_state(member, ReplicaState.STOPPED)
        self.stops[member.replica.chip] += 1
        self._closed.append(member)
        del self.members[member.replica.id]
        self.router = self._router()

    def _retire(self, member: _Member) -> None:
        """Stop at once when idle, else drain until the engine is empty."""
        if member.engine.has_work:
            self._set_state(member, ReplicaState.DRAINING)
        else:
            self._stop(member)

    def _apply(self, targets: Targets | None) -> None:
        if targets is None:
            return
        self.targets.update(targets)
        for pool in self.pools:
            self._reconcile(pool, *self.targets.get(pool, (0, 0)))

    def _reconcile(self, pool: str, active: int, standby: int) -> None:
        """Enact the shared rule set (routing.fleet.reconcile), as the gateway's lifecycle does."""
        members = [
            Member(m.replica.id, m.replica.state, m.destination, m.replica.telemetry.outstanding_sequences())
            for m in self.members.values() if m.pool == pool
        ]
        for action in reconcile(members, active, standby):
            if action.kind == "start":
                self._start(pool, action.heading)
                continue
            m = self.members[action.replica]  # type: ignore[index]
            if action.kind == "wake":
                self._set_state(m, ReplicaState.STARTING)
                m.destination = ReplicaState.ACTIVE
                self._push(self.clock.now + self.wake_s, 1, m)
            elif action.kind == "park":
                self._set_state(m, ReplicaState.STANDBY)
                m.destination = ReplicaState.STANDBY
            elif action.kind == "cancel":
                self._stop(m)
            else:
                self._retire(m)

    # -- the run -------------------------------------------------------------
    def run(self, trace: Sequence[TraceRequest], *, sample_s: float) -> FleetResult:
        for pool, count in self.controller.initial().items():
            for _ in range(count):
                self._start(pool, ReplicaState.ACTIVE, warm=True)
            self.targets[pool] = (count, 0)
        if self.controller.tick_s is not None:
            self._push(self.controller.tick_s, 2, None)
        self._push(sample_s, 3, None)
        n = len(trace)
        ttfts = [float("inf")] * n
        tpots = [0.0] * n
        failed = 0
        reasons: Counter[str] = Counter()
        samples: list[Sample] = []
        arrivals_since = 0
        next_arrival = 0
        while next_arrival < n or self._events:
            arrival_at = trace[next_arrival].arrival_s if next_arrival < n else float("inf")
            if self._events and self._events[0][0] <= arrival_at:
                when, _, kind, payload = heapq.heappop(self._events)
                self.clock.now = when
                if kind == 0:
                    member = payload
                    assert isinstance(member, _Member)
                    member.engine.settle_step(when, ttfts, tpots)
                    self._kick(member)
                    if member.replica.state is ReplicaState.DRAINING and not member.engine.has_work:
                        self._stop(member)
                elif kind == 1:
                    member = payload
                    assert isinstance(member, _Member)
                    if member.replica.id in self.members and member.replica.state is ReplicaState.STARTING:
                        self._set_state(member, member.destination)
                elif kind == 2:
                    self._apply(self.controller.tick(when, self))
                    if when + self.controller.tick_s <= self.duration_s:  # type: ignore[operator]
                        self._push(when + self.controller.tick_s, 2, None)  # type: ignore[operator]
                else:
                    samples.append(self._sample(when, arrivals_since / sample_s))
                    arrivals_since = 0
                    if when + sample_s <= self.duration_s:
                        self._push(when + sample_s, 3, None)
                continue
            request = trace[next_arrival]
            self.clock.now = request.arrival_s
            arrivals_since += 1
            self.controller.observe(self.clock.now, request.prompt_tokens, request.output_tokens)
            route = RouteRequest(MODEL, request.prompt_tokens, request.max_tokens or ROUTE_MAX_TOKENS)
            try:
                decision = self.router.choose(route, self.clock.now)
            except NoReplicaAvailable:
                decision = None
            if decision is None or decision.reason == "slo unmet: least loaded":
                self._apply(self.controller.overloaded(self.clock.now, self))
            if decision is None:
                failed += 1
                reasons["no replica available"] += 1
                next_arrival += 1
                continue
            reasons[decision.reason] += 1
            replica = decision.replica
            ticket = replica.telemetry.begin(
                request.prompt_tokens, 1,
                predicted_ttft_s=decision.predicted_ttft_s, predicted_tpot_s=decision.predicted_tpot_s,
            )
            member = self.members[replica.id]
            member.engine.waiting.append(
                SimSequence(next_arrival, request.arrival_s, request.prompt_tokens, request.output_tokens, ticket)
            )
            self._kick(member)
            next_arrival += 1
        return self._result(trace, ttfts, tpots, failed, reasons, samples)

    def _kick(self, member: _Member) -> None:
        engine = member.engine
        if not engine.stepping and engine.has_work:
            self._push(engine.start_step(self.clock.now), 0, member)

    def _sample(self, when: float, rate: float) -> Sample:
        chips: Counter[str] = Counter()
        cost = 0.0
        for m in self.members.values():
            chips[m.replica.chip] += 1
            cost += float(m.replica.cost_per_hour)
        return Sample(when, rate, dict(chips), cost)

    def _result(
        self, trace: Sequence[TraceRequest], ttfts: list[float], tpots: list[float], failed: int,
        reasons: Counter[str], samples: list[Sample],
    ) -> FleetResult:
        self.clock.now = max(self.clock.now, self.duration_s)
        for member in list(self.members.values()):
            self._set_state(member, member.replica.state)  # close the books at the end
        paid: Counter[str] = Counter()
        cost = Decimal(0)
        for member in [*self._closed, *self.members.values()]:
            paid[member.replica.chip] += member.paid_s
            cost += Decimal(repr(member.paid_s)) * member.replica.cost_per_hour
        return FleetResult(
            strategy=self.controller.name,
            policy=self.controller.policy,
            ttft_s=ttfts,
            tpot_s=tpots,
            failed=failed,
            output_tokens=sum(r.output_tokens for r in trace),
            cost_usd=cost / Decimal(3600),
            paid_s_by_chip=dict(paid),
            state_s=dict(self.state_s),
            starts_by_chip=self.starts,
            stops_by_chip=self.stops,
            reasons=reasons,
            samples=samples,
            duration_s=self.duration_s,
        )
