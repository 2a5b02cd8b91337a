"""What the planner decided for one model: replicas per pool, and why, in words."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from routing.fleet.forecast import Forecast
from routing.fleet.pools import TokenMix


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """The decision for one pool.

    ``desired_active`` counts replicas that should be starting or active (standby
    ones are woken first, then new ones started); ``desired_standby`` warm ones
    kept out of routing; ``planned`` the replicas the target mix holds, including
    starts deferred until their cold start must begin. ``capacity_rps`` is one
    replica's SLO capacity at the plan's token mix (0: the SLO cannot be met there).
    """

    pool: str
    chip: str
    desired_active: int
    desired_standby: int
    planned: int
    capacity_rps: float
    batch: int | None
    tpot_s: float | None
    ttft_s: float | None
    cost_per_hour: Decimal
    starting_now: int
    stopping_now: int
    reason: str

    @property
    def desired(self) -> int:
        """Replicas the operator pays for under this plan (active + standby)."""
        return self.desired_active + self.desired_standby


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """One planning decision for one model at ``at``.

    ``demand_rps`` is what must be served now (forecast envelope with headroom),
    ``target_rps`` what the planned mix was sized for (the horizon's demand, held
    up by hysteresis); ``feasible`` is False when the SLO cannot be met for that
    demand with what the pools allow (the plan is then the best effort).
    """

    model: str
    at: float
    feasible: bool
    demand_rps: float
    target_rps: float
    horizon_s: float
    forecast: Forecast
    mix: TokenMix
    pools: tuple[PoolPlan, ...]
    reasons: tuple[str, ...]
    cost_per_hour: Decimal
    max_cost_per_hour: Decimal

    @property
    def capacity_rps(self) -> float:
        """SLO capacity of the replicas the plan keeps active (starting ones included)."""
        return sum(p.desired_active * p.capacity_rps for p in self.pools)

    @property
    def summary(self) -> str:
        """The reasons as one line (for logs and the admin surface)."""
        return "; ".join(self.reasons)

    def pool(self, name: str) -> PoolPlan:
        """The plan of pool ``name``; KeyError when the plan has none."""
        for plan in self.pools:
            if plan.pool == name:
                return plan
        raise KeyError(f"no pool {name!r} in the plan of {self.model!r}")

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for ``GET /admin/fleet``."""
        return {
            "model": self.model,
            "at": self.at,
            "feasible": self.feasible,
            "demand_rps": round(self.demand_rps, 3),
            "target_rps": round(self.target_rps, 3),
            "capacity_rps": round(self.capacity_rps, 3),
            "horizon_s": round(self.horizon_s, 1),
            "forecast": {
                "level_rps": round(self.forecast.level, 3),
                "trend_rps_per_min": round(self.forecast.trend * 60, 3),
                "peak_rps": round(self.forecast.peak, 3),
            },
            "mix": {"prompt_tokens": round(self.mix.prompt_tokens, 1), "output_tokens": round(self.mix.output_tokens, 1)},
            "cost_per_hour": str(self.cost_per_hour),
            "max_cost_per_hour": str(self.max_cost_per_hour),
            "pools": [
                {
                    "pool": p.pool,
                    "chip": p.chip,
                    "desired_active": p.desired_active,
                    "desired_standby": p.desired_standby,
                    "planned": p.planned,
                    "capacity_rps": round(p.capacity_rps, 3),
                    "tpot_ms": None if p.tpot_s is None else round(p.tpot_s * 1000, 1),
                    "ttft_ms": None if p.ttft_s is None else round(p.ttft_s * 1000, 1),
                    "cost_per_hour": str(p.cost_per_hour),
                    "reason": p.reason,
                }
                for p in self.pools
            ],
            "reasons": list(self.reasons),
        }
