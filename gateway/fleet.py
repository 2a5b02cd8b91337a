"""The fleet loop: every few seconds, load -> planner -> lifecycle, in one process at a time.

Per model with pools: the load this gateway (and, with shared state, every
gateway) saw feeds ``routing.fleet.FleetPlanner``; its plan is enacted by the
lifecycle (start, wake, park, retire); paid replica time is written. When the
router finds no active replica that meets the SLO (or none at all), the model is
planned again at once ("scale out now"). With several gateways, a lease decides
which one plans and actuates; the others follow the published plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from backends.chips import CHIPS
from backends.settings import PoolConfig
from gateway.config import GatewayConfig
from gateway.fleet_shared import SharedFleet
from gateway.lifecycle import Lifecycle
from routing.fleet.load import LoadTracker
from routing.fleet.plan import FleetPlan
from routing.fleet.planner import FleetPlanner
from routing.fleet.pools import PoolSpec, PoolStatus
from routing.replica import ReplicaState

log = logging.getLogger("maas.fleet")

_DECISIONS = 20
#: a static replica is a pool of fixed size named after its chip
STATIC_PREFIX = "static-"


def pool_spec(pool: PoolConfig) -> PoolSpec:
    """What the planner knows of a configured pool (a simulated pool's timings run time-scaled)."""
    profile = CHIPS.get(pool.chip)
    scale = float(pool.replica.get("time_scale", 1.0)) if pool.backend == "simulated" else 1.0
    if profile is not None and scale != 1.0:
        profile = profile.scaled(scale)
    cost = pool.cost_per_hour if pool.cost_per_hour is not None else (profile.cost_per_hour if profile else Decimal(0))
    cold = pool.cold_start_s if pool.cold_start_s is not None else (profile.cold_start_s if profile else 60.0)
    return PoolSpec(pool.name, pool.model, pool.chip, cost, pool.min, pool.max, cold * scale, profile)


class FleetController:
    """Plans and enacts the fleet; ``snapshot`` is ``GET /admin/fleet``."""

    def __init__(
        self,
        config: GatewayConfig,
        lifecycle: Lifecycle,
        planner: FleetPlanner,
        tracker: LoadTracker,
        *,
        shared: SharedFleet | None = None,
        on_plan: Callable[[FleetPlan], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._lifecycle = lifecycle
        self._planner = planner
        self.tracker = tracker
        self._shared = shared
        self._on_plan = on_plan
        self._clock = clock
        self.leader = shared is None
        self.plans: dict[str, FleetPlan] = {}
        #: the leader's published views, when this gateway follows
        self._followed: dict[str, dict[str, Any]] = {}
        self.decisions: dict[str, deque[dict[str, Any]]] = {}
        self._overloaded: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.models = sorted({p.model for p in config.pools})

    # -- the loop ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.models and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="fleet-planner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._shared is not None:
            await self._shared.release()

    async def _run(self) -> None:
        interval = self._config.fleet.interval_s
        while True:
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop planning
                log.exception("fleet: planning failed")
            # the next tick comes on schedule, or at once when the router reports overload
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()

    def replan(self, model: str) -> None:
        """Capacity of ``model`` changed outside the plan (a replica died): plan now, not at the next tick."""
        if model in self.models:
            self._wake.set()

    def overloaded(self, model: str) -> None:
        """The router found no active replica meeting the SLO for ``model``: plan now."""
        if model in self.models and model not in self._overloaded:
            self._overloaded.add(model)
            self._wake.set()

    async def tick(self) -> None:
        """One planning round (the loop calls it; tests may too)."""
        now = self._clock()
        overloaded, self._overloaded = self._overloaded, set()
        if self._shared is not None:
            self.leader = await self._shared.hold(now)
            await self._shared.publish_load(self.tracker, now)
        if not self.leader:
            await self._follow()
            return
        for model in self.models:
            await self._plan(model, now, overloaded=model in overloaded)
        if self._shared is not None:
            await self._shared.publish_members(self._lifecycle.shareable())
        await self._lifecycle.account()

    async def _plan(self, model: str, now: float, *, overloaded: bool) -> None:
        window = self.tracker.window(model)
        if self._shared is not None:
            window = window.merged(*await self._shared.other_loads(model, now))
        load = window.estimate(now, self._config.fleet.load)
        specs, statuses = self._pools(model)
        plan_for = self._planner.scale_out_now if overloaded else self._planner.plan
        plan = plan_for(model, now, load, specs, statuses)
        self.plans[model] = plan
        for pool in plan.pools:
            if pool.pool in self._lifecycle.pools:
                # replicas kept only until their replacements serve: routing steers away from them
                retiring = max(0, pool.desired_active - pool.planned)
                self._lifecycle.enact(
                    pool.pool, pool.desired_active, pool.desired_standby, retiring=retiring,
                    reason="router overload" if overloaded else "plan",
                )
        self._remember(plan)
        if self._shared is not None:
            await self._shared.publish_plan(model, self.snapshot_model(model))
        if self._on_plan is not None:
            self._on_plan(plan)

    def _pools(self, model: str) -> tuple[list[PoolSpec], dict[str, PoolStatus]]:
        specs = [pool_spec(p) for p in self._config.pools if p.model == model]
        statuses = {s.name: self._lifecycle.status(s.name) for s in specs}
        static: dict[str, int] = {}
        for replica in self._lifecycle.registry.for_model(model):
            if replica.id in {r.id for r in self._config.replicas} and replica.state is ReplicaState.ACTIVE:
                static[replica.chip] = static.get(replica.chip, 0) + 1
        for chip, count in static.items():
            profile = CHIPS.get(chip)
            cost = sum((r.cost_per_hour for r in self._lifecycle.registry.for_model(model) if r.chip == chip
                        and r.id in {s.id for s in self._config.replicas}), Decimal(0)) / count
            spec = PoolSpec(STATIC_PREFIX + chip, model, chip, cost, count, count, 0.0, profile)
            specs.append(spec)
            statuses[spec.name] = PoolStatus(active=count)
        return specs, statuses

    def _remember(self, plan: FleetPlan) -> None:
        previous = self.decisions.setdefault(plan.model, deque(maxlen=_DECISIONS))
        entry = {"at": plan.at, "reasons": list(plan.reasons)}
        if not previous or previous[-1]["reasons"] != entry["reasons"]:
            previous.append(entry)
            log.info("fleet: %s: %s", plan.model, plan.summary)

    async def _follow(self) -> None:
        """Not the leader: take the leader's plan (for the admin view and routing flags)."""
        assert self._shared is not None
        for model in self.models:
            view = await self._shared.plan(model)
            if view is not None:
                self._followed[model] = view
        await self._lifecycle.follow(await self._shared.members())

    # -- the operator's view -------------------------------------------------------------------
    def snapshot_model(self, model: str) -> dict[str, Any]:
        plan = self.plans.get(model)
        pools = []
        for config in self._config.pools:
            if config.model != model:
                continue
            status = self._lifecycle.status(config.name)
            spec = pool_spec(config)
            planned = plan.pool(config.name) if plan is not None and _has(plan, config.name) else None
            pools.append({
                "pool": config.name, "chip": config.chip, "actuator": config.actuator,
                "backend": config.backend, "simulated": config.backend == "simulated",
                "cost_per_hour": str(spec.cost_per_hour), "min": config.min, "max": config.max,
                "cold_start_s": round(spec.cold_start_s, 2),
                "measured_cold_start_s": None if status.measured_cold_start_s is None
                else round(status.measured_cold_start_s, 2),
                "desired": planned.desired_active if planned else None,
                "desired_standby": planned.desired_standby if planned else None,
                "replicas": {"starting": status.starting, "active": status.active, "standby": status.standby,
                             "draining": status.draining},
                "capacity_rps_per_replica": round(planned.capacity_rps, 3) if planned else None,
                "reason": planned.reason if planned else None,
            })
        view: dict[str, Any] = {"model": model, "pools": pools,
                                "decisions": list(self.decisions.get(model, ()))}
        if plan is not None:
            snap = plan.snapshot()
            view.update({
                "at": plan.at, "feasible": plan.feasible, "demand_rps": snap["demand_rps"],
                "target_rps": snap["target_rps"], "capacity_rps": snap["capacity_rps"],
                "forecast": snap["forecast"], "mix": snap["mix"],
                "load": {"rate_rps": round(plan.forecast.level, 3), "peak_rps": round(plan.forecast.peak, 3),
                         "prompt_tokens": snap["mix"]["prompt_tokens"], "output_tokens": snap["mix"]["output_tokens"]},
                "forecast_rps": round(plan.forecast.envelope(plan.horizon_s), 3),
                "cost_per_hour": snap["cost_per_hour"], "max_cost_per_hour": snap["max_cost_per_hour"],
            })
        return view

    def snapshot(self) -> dict[str, Any]:
        models = [self._followed.get(m) if not self.leader and m in self._followed else self.snapshot_model(m)
                  for m in self.models]
        all_on = sum((pool_spec(p).cost_per_hour * p.max for p in self._config.pools), Decimal(0))
        all_on += sum((r.cost_per_hour for r in self._lifecycle.registry.all() if r.id in {s.id for s in self._config.replicas}),
                      Decimal(0))
        return {
            "object": "fleet",
            "leader": self.leader,
            "planner_interval_s": self._config.fleet.interval_s,
            "currency": "USD",
            "cost_per_hour_now": str(self._lifecycle.cost_per_hour()),
            "cost_per_hour_all_on": str(all_on),
            "models": models,
            "events": [e.to_dict() for e in list(self._lifecycle.events)[-50:]],
        }


def _has(plan: FleetPlan, pool: str) -> bool:
    return any(p.pool == pool for p in plan.pools)
