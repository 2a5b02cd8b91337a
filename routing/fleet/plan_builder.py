"""Assembling a :class:`FleetPlan`: per-pool decisions and their reasons in words.

The planner decides the numbers; this puts them into a plan an operator can read
("2 x nvidia-l4 cover 9.8 req/s at TPOT 71 ms; amd-mi300x stopped: saves $3.99/h").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from routing.fleet.forecast import Forecast
from routing.fleet.plan import FleetPlan, PoolPlan
from routing.fleet.pools import PoolCapacity, PoolSpec, PoolStatus, TokenMix
from routing.settings import SLO, PlannerConfig

_CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PoolView:
    """One pool during one planning call: spec, status, capacity and lead time."""

    spec: PoolSpec
    status: PoolStatus
    capacity: PoolCapacity
    cold_start_s: float
    #: cold start plus one tick: how early a start must be decided
    lead_s: float
    cost_micros: int
    start_micros: int

    @property
    def name(self) -> str:
        return self.spec.name


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(_CENTS)}/h"


class PlanBuilder:
    """Collects the decisions of one planning call and builds the plan."""

    def __init__(
        self,
        model: str,
        now: float,
        config: PlannerConfig,
        slo: SLO,
        views: Sequence[PoolView],
        forecast: Forecast,
        mix: TokenMix,
        horizon_s: float,
    ) -> None:
        self.model = model
        self.now = now
        self.config = config
        self.slo = slo
        self.views = views
        self.forecast = forecast
        self.mix = mix
        self.horizon_s = horizon_s
        self.demand_rps = 0.0
        self.target_rps = 0.0
        self._notes: list[str] = []
        self._pools: list[PoolPlan] = []

    def note(self, text: str) -> None:
        """A reason that concerns the whole plan."""
        self._notes.append(text)

    def demand(self, now_rps: float, target_rps: float) -> None:
        self.demand_rps, self.target_rps = now_rps, target_rps

    def infeasible(self, target_rps: float, max_rps: float) -> None:
        self.note(
            f"SLO infeasible: {target_rps:.1f} req/s needed, every pool at max gives {max_rps:.1f} req/s; "
            "best effort with every usable pool at max"
        )

    def held(self, peak_rps: float, age_s: float) -> None:
        left = max(0.0, self.config.scale_in_after_s - age_s)
        self.note(
            f"scale-in held {left:.0f} s more: {peak_rps:.1f} req/s was needed {age_s:.0f} s ago "
            f"(scale in after {self.config.scale_in_after_s:.0f} s below)"
        )

    def waiting_for_replacements(self, chips: Sequence[str]) -> None:
        self.note(f"keeping {', '.join(chips)} until the replicas replacing them are active")

    def unmeetable(self, chosen: tuple[str, float] | None) -> None:
        slo = (
            f"no pool meets TTFT {self.slo.ttft_ms:g} ms / TPOT {self.slo.tpot_ms:g} ms "
            f"(x{self.config.slo_margin:g} margin) at {self.mix.prompt_tokens:.0f}/{self.mix.output_tokens:.0f} tokens"
        )
        if chosen is None:
            self.note(f"SLO infeasible: {slo}, and none can be sized; pools kept at min")
        else:
            chip, relax = chosen
            self.note(f"SLO infeasible: {slo}; best effort on {chip}, the cheapest that meets {relax:g}x the SLO")

    def pool(self, view: PoolView, *, planned: int, active: int, standby: int) -> None:
        """Record the decision for one pool, with its reason."""
        status, spec = view.status, view.spec
        capacity = view.capacity
        point = capacity.point
        starting_now = max(0, active - status.committed)
        stopping_now = max(0, status.committed - active - standby)
        self._pools.append(
            PoolPlan(
                pool=spec.name,
                chip=spec.chip,
                desired_active=active,
                desired_standby=standby,
                planned=max(planned, active),
                capacity_rps=capacity.requests_per_s,
                batch=None if point is None else point.batch,
                tpot_s=None if point is None else point.tpot_s,
                ttft_s=None if point is None else point.ttft_s,
                cost_per_hour=spec.cost_per_hour * (active + standby),
                starting_now=starting_now,
                stopping_now=stopping_now,
                reason=self._pool_reason(view, planned, active, standby, starting_now, stopping_now),
            )
        )

    def _pool_reason(
        self, view: PoolView, planned: int, active: int, standby: int, starting_now: int, stopping_now: int
    ) -> str:
        spec, capacity = view.spec, view.capacity
        parts: list[str] = []
        if not capacity.usable:
            parts.append(
                f"{spec.chip} cannot meet the SLO at {self.mix.prompt_tokens:.0f}/{self.mix.output_tokens:.0f} tokens"
                + (f"; kept at min {spec.min_replicas}" if spec.min_replicas else "")
            )
        elif active:
            at = "" if capacity.point is None else f" at TPOT {capacity.point.tpot_s * 1000:.0f} ms"
            parts.append(f"{active} x {spec.chip} cover {active * capacity.requests_per_s:.1f} req/s{at}")
            if starting_now:
                parts[-1] += f" ({starting_now} starting now, {view.cold_start_s:.0f} s cold start)"
        if capacity.usable and planned > active:
            parts.append(
                f"{planned - active} more x {spec.chip} planned, started {view.lead_s:.0f} s before the forecast needs them"
            )
        if standby:
            parts.append(
                f"{standby} x {spec.chip} on standby: its {view.cold_start_s:.0f} s cold start is beyond the "
                f"{self.config.trusted_horizon_s:.0f} s the forecast is trusted for"
            )
        if stopping_now:
            saved = _usd(spec.cost_per_hour * stopping_now)
            if active + standby == 0:
                parts.append(f"{spec.chip} stopped: saves {saved}")
            else:
                parts.append(f"{spec.chip} {active + standby + stopping_now} -> {active + standby}: saves {saved}")
        return "; ".join(parts)

    def build(self, *, feasible: bool) -> FleetPlan:
        """The finished plan."""
        f = self.forecast
        summary = (
            f"demand {self.demand_rps:.1f} req/s now, {self.target_rps:.1f} planned for the next "
            f"{self.horizon_s:.0f} s (level {f.level:.1f}, trend {f.trend * 60:+.2f}/min, peak {f.peak:.1f} req/s, "
            f"+{self.config.headroom:.0%} headroom) at {self.mix.prompt_tokens:.0f}/{self.mix.output_tokens:.0f} tokens"
        )
        cost = sum((p.cost_per_hour for p in self._pools), Decimal(0))
        max_cost = sum((v.spec.cost_per_hour * v.spec.max_replicas for v in self.views), Decimal(0))
        pool_reasons = [p.reason for p in self._pools if p.reason and (p.desired or p.stopping_now or p.planned)]
        reasons = (summary, *self._notes, *pool_reasons, f"fleet {_usd(cost)} (all pools at max: {_usd(max_cost)})")
        return FleetPlan(
            model=self.model,
            at=self.now,
            feasible=feasible,
            demand_rps=self.demand_rps,
            target_rps=self.target_rps,
            horizon_s=self.horizon_s,
            forecast=f,
            mix=self.mix,
            pools=tuple(self._pools),
            reasons=reasons,
            cost_per_hour=cost,
            max_cost_per_hour=max_cost,
        )
