"""The fleet planner: how many replicas of each pool a model should run.

Every tick (``PlannerConfig.interval_s``), per model: the observed load feeds the
forecaster; each pool's SLO capacity comes from its chip profile at the observed
token mix (``pools.slo_capacity``); the demand to provision for is the forecast
envelope up to the slowest pool's cold start, times (1 + headroom). Then:

1. **Target mix** - the exact cheapest integer mix of replicas covering the
   demand (``solver.cheapest_mix``), within each pool's min/max. Running
   replicas cost their $/hour; new ones also their cold start (paid, serving
   nothing) spread over ``start_amortisation_s``, so the fleet does not churn
   for a marginal saving; a swap of chips (start here, stop there) happens at
   once only if it saves ``swap_saving``, else after ``scale_in_after_s``.
2. **Hysteresis** - the demand used is the highest of the last
   ``scale_in_after_s`` (remembered as a share of all pools at max, so that a
   shift to longer prompts counts as more load): the fleet shrinks only once
   the load has stayed below for that long, and never below a pool's min.
3. **Start lead times** (unit commitment) - a new replica of a pool starts now
   only if the forecast at that pool's cold start (+ one tick) ahead needs it;
   otherwise the start is deferred to a later tick, when it is still in time.
4. **Make before break, minimum up time** - replicas leave only when the
   replicas already active after the change still cover today's demand, and
   never within ``min_up_s`` of the planner starting them (a start costs a cold
   start: a replica that leaves again at once wasted it).
5. **Standby** - for pools whose cold start is beyond ``trusted_horizon_s``
   (longer than the forecast can be trusted), warm standby replicas absorb a
   ``standby_surge`` the faster pools cannot.

``scale_out_now`` is the router's call when no active replica meets the SLO: the
demand is raised above what runs (and held like any peak), and a plan is made at
once. The planner decides only; the lifecycle object enacts the plan. Pure: no
I/O, no clock of its own (``now`` is passed in), state only per model.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from routing.fleet.commitment import hold_until_replaced, standby_for, start_times
from routing.fleet.forecast import Forecaster
from routing.fleet.load import LoadEstimate
from routing.fleet.plan import FleetPlan
from routing.fleet.plan_builder import PlanBuilder, PoolView
from routing.fleet.pools import PoolSpec, PoolStatus, TokenMix, cold_start_s, slo_capacity
from routing.fleet.solver import Mix, MixOption, cheapest_mix
from routing.settings import SLO, PlannerConfig

#: what "some load" means when the router reports overload with nothing running
_SMALLEST_DEMAND = 1e-6
#: relaxations of the SLO tried, in turn, when no pool can meet it
_RELAXATIONS = (1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)


@dataclass
class _ModelState:
    forecaster: Forecaster
    #: (time, demand) of recent ticks: the hysteresis window
    history: deque[tuple[float, float]]
    #: (time, demand) floors raised by overload reports, held like the history
    floors: deque[tuple[float, float]]
    mix: TokenMix | None = None
    last_bump: float | None = None
    #: since when a cheaper swap of chips has been held back
    swap_since: float | None = None
    #: per pool, when the planner started each replica still within ``min_up_s``
    starts: dict[str, deque[float]] = dataclasses.field(default_factory=dict)


class FleetPlanner:
    """Plans replicas per pool for each model (see the module docstring)."""

    def __init__(self, config: PlannerConfig, *, slo: SLO) -> None:
        self.config = config
        self.slo = slo
        self._states: dict[str, _ModelState] = {}

    def plan(
        self,
        model: str,
        now: float,
        load: LoadEstimate,
        pools: Sequence[PoolSpec],
        statuses: Mapping[str, PoolStatus],
    ) -> FleetPlan:
        """The plan for ``model`` at ``now`` (``statuses`` by pool name; missing: nothing runs)."""
        state = self._state(model)
        state.forecaster.observe(now, load.requests_per_s)
        return self._plan(state, model, now, load, pools, statuses, overloaded=False)

    def scale_out_now(
        self,
        model: str,
        now: float,
        load: LoadEstimate,
        pools: Sequence[PoolSpec],
        statuses: Mapping[str, PoolStatus],
    ) -> FleetPlan:
        """Plan at once for more than runs now: the router found no active replica
        meeting the SLO. Repeated reports raise the demand at most once a tick."""
        state = self._state(model)
        state.forecaster.observe(now, load.requests_per_s)
        return self._plan(state, model, now, load, pools, statuses, overloaded=True)

    def forget(self, model: str) -> None:
        """Drop what the planner remembers about ``model`` (its forecast and hysteresis)."""
        self._states.pop(model, None)

    def _state(self, model: str) -> _ModelState:
        state = self._states.get(model)
        if state is None:
            state = _ModelState(Forecaster(self.config.forecast), deque(), deque())
            self._states[model] = state
        return state

    def _mix(self, state: _ModelState, load: LoadEstimate) -> TokenMix:
        if load.prompt_tokens is not None and load.output_tokens is not None and load.requests:
            state.mix = TokenMix(load.prompt_tokens, load.output_tokens)
        if state.mix is None:
            return TokenMix(self.config.default_prompt_tokens, self.config.default_output_tokens)
        return state.mix

    def _view(self, spec: PoolSpec, status: PoolStatus, mix: TokenMix, margin: float) -> PoolView:
        cold = cold_start_s(spec, status)
        cost = int(spec.cost_per_hour * 1_000_000)
        return PoolView(
            spec=spec,
            status=status,
            capacity=slo_capacity(spec, mix, self.slo, margin=margin, calibration=status.calibration),
            cold_start_s=cold,
            lead_s=cold + self.config.interval_s,
            cost_micros=cost,
            start_micros=round(cost * cold / self.config.start_amortisation_s),
        )

    def _plan(
        self,
        state: _ModelState,
        model: str,
        now: float,
        load: LoadEstimate,
        pools: Sequence[PoolSpec],
        statuses: Mapping[str, PoolStatus],
        *,
        overloaded: bool,
    ) -> FleetPlan:
        cfg = self.config
        mix = self._mix(state, load)
        forecast = state.forecaster.forecast(peak=load.peak_requests_per_s)
        views = [self._view(s, statuses.get(s.name) or PoolStatus(), mix, cfg.slo_margin) for s in pools]
        usable = [v for v in views if v.capacity.usable]
        horizon = max((v.lead_s for v in usable), default=cfg.interval_s)
        factor = 1.0 + cfg.headroom
        builder = PlanBuilder(model, now, cfg, self.slo, views, forecast, mix, horizon)

        def need(ahead_s: float) -> float:
            return forecast.envelope(ahead_s) * factor

        full = sum(v.capacity.requests_per_s * v.spec.max_replicas for v in usable)
        if full <= 0:
            builder.demand(need(0.0), need(horizon))
            return self._best_effort(builder, views, mix, need(horizon))
        # demand is remembered as a share of what every pool at max gives at the mix of
        # its time: a shift to longer prompts reads as more load, and the hysteresis holds
        # capacity, not a request rate that a lighter mix would serve with fewer replicas
        if overloaded and (state.last_bump is None or now - state.last_bump >= cfg.interval_s):
            # above what serves now (not what is starting: that would compound on repeats)
            serving = sum(v.capacity.requests_per_s * (v.status.active + v.status.standby) for v in usable)
            bumped = max(serving * (1.0 + cfg.overload_step), _SMALLEST_DEMAND)
            state.floors.append((now, bumped / full))
            state.last_bump = now
            builder.note(f"router: no active replica meets the SLO; planning for {bumped:.1f} req/s now")
        state.history.append((now, need(horizon) / full))
        for window in (state.history, state.floors):
            while window and window[0][0] < now - cfg.scale_in_after_s:
                window.popleft()
        floor = max((v for _, v in state.floors), default=0.0) * full
        target = max(floor, max(v for _, v in state.history) * full)
        builder.demand(need(0.0), target)

        for starts in state.starts.values():
            while starts and starts[0] <= now - cfg.min_up_s:
                starts.popleft()
        options = _options(usable, {name: len(starts) for name, starts in state.starts.items()})
        solution = cheapest_mix(options, target)
        if solution is None:
            counts = {v.name: v.spec.max_replicas for v in usable}
            builder.infeasible(target, sum(v.capacity.requests_per_s * v.spec.max_replicas for v in usable))
        else:
            solution = self._unless_swap_pays(state, builder, usable, options, solution, target)
            counts = {v.name: solution.counts[v.name + _KEPT] + solution.counts[v.name + _NEW] for v in usable}
            relaxed = cheapest_mix(options, max(floor, need(horizon)))
            if relaxed is not None and relaxed.cost < solution.cost:
                peak_at, peak = max(state.history, key=lambda tv: (tv[1], tv[0]))
                builder.held(peak * full, now - peak_at)

        active = start_times(usable, counts, lambda ahead: max(floor, need(ahead)))
        held = hold_until_replaced(usable, active, max(floor, need(0.0)))
        if held:
            builder.waiting_for_replacements(held)
        standby = standby_for(
            usable, active, target, trusted_horizon_s=cfg.trusted_horizon_s, surge=cfg.standby_surge
        )
        for v in usable:
            started = active[v.name] - v.status.committed
            if started > 0:
                state.starts.setdefault(v.name, deque()).extend([now] * started)
        for v in views:
            builder.pool(
                v,
                planned=counts.get(v.name, v.spec.min_replicas),
                active=active.get(v.name, v.spec.min_replicas),
                standby=standby.get(v.name, 0),
            )
        return builder.build(feasible=solution is not None)

    def _unless_swap_pays(
        self,
        state: _ModelState,
        builder: PlanBuilder,
        usable: Sequence[PoolView],
        options: list[MixOption],
        best: Mix,
        target: float,
    ) -> Mix:
        """A mix that starts replicas in one pool while stopping them in another (a
        swap of chips) is taken at once only if it saves ``swap_saving`` over the best
        mix that only grows or only shrinks; a smaller saving must hold for
        ``scale_in_after_s`` first, like any scale-in: near-equal mixes flip with
        every wobble of the token mix, and each flip pays a cold start."""
        grows = any(best.counts[v.name + _NEW] for v in usable)
        shrinks = any(best.counts[v.name + _KEPT] < min(v.status.committed, v.spec.max_replicas) for v in usable)
        if not (grows and shrinks):
            state.swap_since = None
            return best
        only_grow = [dataclasses.replace(o, low=o.high) if o.key.endswith(_KEPT) else o for o in options]
        only_shrink = [dataclasses.replace(o, high=o.low) if o.key.endswith(_NEW) else o for o in options]
        alternatives = [m for m in (cheapest_mix(only_grow, target), cheapest_mix(only_shrink, target)) if m]
        if not alternatives:
            return best
        steady = min(alternatives, key=lambda m: m.cost)
        if state.swap_since is None:
            state.swap_since = builder.now
        waited = builder.now - state.swap_since
        if steady.cost > best.cost * (1.0 + self.config.swap_saving) or waited >= self.config.scale_in_after_s:
            state.swap_since = None
            return best
        saving = (Decimal(steady.cost - best.cost) / 1_000_000).quantize(Decimal("0.01"))
        builder.note(
            f"swap of chips held {self.config.scale_in_after_s - waited:.0f} s more: it saves ${saving}/h "
            f"(< {self.config.swap_saving:.0%} of the fleet)"
        )
        return steady

    def _best_effort(self, builder: PlanBuilder, views: Sequence[PoolView], mix: TokenMix, target: float) -> FleetPlan:
        """No pool meets the SLO at this mix: the fastest pool (the one needing the
        least relaxation of the SLO), sized at that relaxation; others at min."""
        chosen: tuple[PoolView, float, float] | None = None
        for relax in _RELAXATIONS:
            for v in views:
                if v.spec.max_replicas == 0:
                    continue
                capacity = slo_capacity(
                    v.spec, mix, self.slo, margin=self.config.slo_margin * relax, calibration=v.status.calibration
                ).requests_per_s
                if capacity > 0 and (chosen is None or v.cost_micros / capacity < chosen[0].cost_micros / chosen[1]):
                    chosen = (v, capacity, relax)
            if chosen is not None:
                break
        for v in views:
            count = v.spec.min_replicas
            if chosen is not None and v is chosen[0]:
                count = min(v.spec.max_replicas, max(1, v.spec.min_replicas, math.ceil(target / chosen[1] - 1e-9)))
            builder.pool(v, planned=count, active=count, standby=0)
        builder.unmeetable(None if chosen is None else (chosen[0].spec.chip, chosen[2]))
        return builder.build(feasible=False)


_KEPT = "\x00kept"
_NEW = "\x00new"


def _options(usable: Sequence[PoolView], locked: Mapping[str, int]) -> list[MixOption]:
    """Two options per pool: replicas it has (their $/hour) and new ones (plus
    their amortised cold start). Kept ones are cheaper, so the solver uses them first.
    ``locked`` replicas per pool (started less than ``min_up_s`` ago) are kept."""
    options: list[MixOption] = []
    for v in usable:
        existing = min(v.status.committed, v.spec.max_replicas)
        low = max(v.spec.min_replicas, locked.get(v.name, 0))
        capacity = v.capacity.requests_per_s
        options.append(MixOption(v.name + _KEPT, capacity, v.cost_micros, min(low, existing), existing))
        options.append(
            MixOption(
                v.name + _NEW,
                capacity,
                v.cost_micros + v.start_micros,
                max(0, v.spec.min_replicas - existing),
                max(0, v.spec.max_replicas - existing),
            )
        )
    return options


