"""The fleet strategies the benchmark compares, as controllers of ``fleet_sim``.

- ``StaticFleet``: a fixed fleet (sized for the peak by the caller).
- ``ReactiveFleet``: a per-pool utilisation autoscaler shaped like Kubernetes'
  HPA: every ``sync_s`` it sets desired = ceil(ready x metric / target) (left
  alone within a 10% tolerance), scales up at once, and scales down only to the
  highest recommendation of the last ``stabilisation_s``. The metric is the mean
  number of requests in flight per ready replica (sampled every second, averaged
  over the sync period, as Ray Serve and KEDA scale on ongoing requests); the
  target is a fraction of the pool's SLO batch. It cannot scale a pool from zero.
- ``PlannerFleet``: the service's ``FleetPlanner`` fed by a ``LoadTracker``,
  asked at every tick and whenever the router finds nothing meeting the SLO.
- ``OracleFleet``: perfect foresight of the load curve: each minute's exact
  cheapest mix, every replica started its cold start before the minute that
  needs it (a lower bound for any strategy sized by the same capacity model).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

from loadtests.fleet_sim import FleetView, Targets
from loadtests.fleet_workload import MinuteRate
from loadtests.routing_sim import MODEL
from routing.fleet import FleetPlan, FleetPlanner, LoadEstimate, LoadTracker, PoolSpec, TokenMix
from routing.fleet.pools import slo_capacity
from routing.fleet.solver import MixOption, cheapest_mix
from routing.settings import SLO


def cheapest_counts(
    pools: Sequence[PoolSpec], demand_rps: float, mix: TokenMix, slo: SLO, *, margin: float
) -> dict[str, int] | None:
    """The exact cheapest replicas per pool covering ``demand_rps`` at ``mix`` (None: impossible)."""
    options = []
    for p in pools:
        capacity = slo_capacity(p, mix, slo, margin=margin).requests_per_s
        high = p.max_replicas if capacity > 0 else p.min_replicas
        options.append(MixOption(p.name, capacity, int(p.cost_per_hour * 1_000_000), p.min_replicas, high))
    solution = cheapest_mix(options, demand_rps)
    return None if solution is None else dict(solution.counts)


def fleet_capacity(pools: Sequence[PoolSpec], counts: Mapping[str, int], mix: TokenMix, slo: SLO, *, margin: float) -> float:
    """SLO capacity (req/s) of ``counts`` replicas at ``mix``."""
    return sum(slo_capacity(p, mix, slo, margin=margin).requests_per_s * counts.get(p.name, 0) for p in pools)


class StaticFleet:
    """The same replicas all the time."""

    tick_s = None

    def __init__(self, name: str, policy: str, counts: Mapping[str, int]) -> None:
        self.name, self.policy, self.counts = name, policy, dict(counts)

    def initial(self) -> Mapping[str, int]:
        return self.counts

    def observe(self, now: float, prompt_tokens: int, output_tokens: int) -> None:
        pass

    def tick(self, now: float, fleet: FleetView) -> Targets | None:
        return None

    def overloaded(self, now: float, fleet: FleetView) -> Targets | None:
        return None


class PlannerFleet:
    """The service's planner, driven exactly as the gateway drives it."""

    name = "planner"
    policy = "cost_latency"

    def __init__(self, planner: FleetPlanner, pools: Sequence[PoolSpec], start: MinuteRate) -> None:
        self.planner = planner
        self.pools = list(pools)
        self.tick_s = planner.config.interval_s
        self.tracker = LoadTracker(planner.config.load)
        self._last_overload: float | None = None
        #: (time, summary) of every plan that changed the fleet
        self.changes: list[tuple[float, str]] = []
        self._last_targets: dict[str, tuple[int, int]] = {}
        # the planner has been running before the run starts: seed it with the first minute
        seed = LoadEstimate(0.0, start.requests_per_s, start.requests_per_s, start.prompt_tokens, start.output_tokens, 1)
        self._initial = self._targets(planner.plan(MODEL, 0.0, seed, self.pools, {}))

    def initial(self) -> Mapping[str, int]:
        return {name: active for name, (active, _) in self._initial.items()}

    def observe(self, now: float, prompt_tokens: int, output_tokens: int) -> None:
        self.tracker.record(MODEL, now, prompt_tokens, output_tokens)

    def tick(self, now: float, fleet: FleetView) -> Targets | None:
        plan = self.planner.plan(MODEL, now, self.tracker.estimate(MODEL, now), self.pools, fleet.statuses())
        return self._record(now, plan)

    def overloaded(self, now: float, fleet: FleetView) -> Targets | None:
        if self._last_overload is not None and now - self._last_overload < self.tick_s:
            return None
        self._last_overload = now
        plan = self.planner.scale_out_now(MODEL, now, self.tracker.estimate(MODEL, now), self.pools, fleet.statuses())
        return self._record(now, plan)

    def _record(self, now: float, plan: FleetPlan) -> Targets:
        targets = self._targets(plan)
        if targets != self._last_targets:
            self.changes.append((now, plan.summary))
            self._last_targets = targets
        return targets

    @staticmethod
    def _targets(plan: FleetPlan) -> dict[str, tuple[int, int]]:
        return {p.pool: (p.desired_active, p.desired_standby) for p in plan.pools}


class ReactiveFleet:
    """Per-pool HPA-like autoscaling on requests in flight per replica."""

    name = "reactive_hpa"
    policy = "cost_latency"
    tick_s = 1.0

    def __init__(
        self,
        initial: Mapping[str, int],
        targets: Mapping[str, float],
        maxima: Mapping[str, int],
        *,
        sync_s: float = 15.0,
        stabilisation_s: float = 300.0,
        tolerance: float = 0.1,
    ) -> None:
        self._initial = dict(initial)
        self.targets = dict(targets)
        self.maxima = dict(maxima)
        self.sync_s = sync_s
        self.stabilisation_s = stabilisation_s
        self.tolerance = tolerance
        self._samples: dict[str, list[float]] = {p: [] for p in targets}
        self._recommendations: dict[str, deque[tuple[float, int]]] = {p: deque() for p in targets}
        self._desired = dict(initial)
        self._next_sync = sync_s

    def initial(self) -> Mapping[str, int]:
        return self._initial

    def observe(self, now: float, prompt_tokens: int, output_tokens: int) -> None:
        pass

    def overloaded(self, now: float, fleet: FleetView) -> Targets | None:
        return None

    def tick(self, now: float, fleet: FleetView) -> Targets | None:
        for pool in self.targets:
            ready = fleet.active(pool)
            if ready:
                self._samples[pool].append(sum(r.telemetry.outstanding_sequences() for r in ready) / len(ready))
        if now + 1e-9 < self._next_sync:
            return None
        self._next_sync = now + self.sync_s
        statuses = fleet.statuses()
        for pool, target in self.targets.items():
            samples, self._samples[pool] = self._samples[pool], []
            status = statuses[pool]
            current = status.starting + status.active
            if not samples or not status.active:
                recommended = current
            else:
                ratio = (sum(samples) / len(samples)) / target
                recommended = current if abs(ratio - 1) <= self.tolerance else math.ceil(status.active * ratio)
            recommended = min(self.maxima[pool], max(1, recommended))
            window = self._recommendations[pool]
            window.append((now, recommended))
            while window and window[0][0] < now - self.stabilisation_s:
                window.popleft()
            # up at once; down only to the highest recommendation of the window
            self._desired[pool] = recommended if recommended >= current else max(v for _, v in window)
        return {pool: (count, 0) for pool, count in self._desired.items()}


class OracleFleet:
    """Perfect foresight: each minute's cheapest mix, started a cold start early."""

    name = "offline_optimum"
    policy = "cost_latency"

    def __init__(
        self,
        pools: Sequence[PoolSpec],
        minutes: Sequence[MinuteRate],
        seconds_per_minute: float,
        slo: SLO,
        *,
        headroom: float,
        margin: float,
        tick_s: float,
    ) -> None:
        self.pools = list(pools)
        self.seconds_per_minute = seconds_per_minute
        self.tick_s = tick_s
        self.schedule: list[dict[str, int]] = []
        for minute in minutes:
            mix = TokenMix(minute.prompt_tokens, minute.output_tokens)
            counts = cheapest_counts(pools, minute.requests_per_s * (1 + headroom), mix, slo, margin=margin)
            self.schedule.append(counts or {p.name: p.max_replicas for p in pools})

    def needed(self, start: float, end: float) -> dict[str, int]:
        """The most replicas of each pool that any minute overlapping [start, end] needs."""
        first = max(0, int(start // self.seconds_per_minute))
        last = min(len(self.schedule) - 1, int(end // self.seconds_per_minute))
        return {p.name: max((self.schedule[m][p.name] for m in range(first, last + 1)), default=0) for p in self.pools}

    def initial(self) -> Mapping[str, int]:
        # already running: whatever the minutes before the first starts complete need
        return self.needed(0.0, max(p.cold_start_s for p in self.pools) + self.tick_s)

    def observe(self, now: float, prompt_tokens: int, output_tokens: int) -> None:
        pass

    def overloaded(self, now: float, fleet: FleetView) -> Targets | None:
        return None

    def tick(self, now: float, fleet: FleetView) -> Targets | None:
        # what must be ready by the next tick, or be starting now to be ready in time
        return {
            p.name: (self.needed(now, now + p.cold_start_s + self.tick_s)[p.name], 0) for p in self.pools
        }

    def per_window_cost_usd(self) -> float:
        """Each minute's cheapest mix paid for that minute only: the floor of this capacity model."""
        return sum(
            float(p.cost_per_hour) * counts[p.name] for counts in self.schedule for p in self.pools
        ) * self.seconds_per_minute / 3600
