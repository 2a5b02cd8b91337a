"""Which replicas of a target mix run now: start lead times, make before break, standby.

The planner's target mix says how many replicas of each pool the fleet should
hold; these functions decide what of it to enact at this tick (unit commitment
with start lead times), each a pure function of the pools' views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from routing.fleet.plan_builder import PoolView
from routing.fleet.solver import MixOption, cheapest_mix

#: seconds ahead -> req/s to cover by then
Demand = Callable[[float], float]


def start_times(usable: Sequence[PoolView], counts: Mapping[str, int], required: Demand) -> dict[str, int]:
    """Replicas to have starting or active now per pool: the kept ones, plus the new
    ones whose pool's lead time has come. A pool's new replica starts now only if the
    demand one lead time ahead is not covered without it; faster pools' new replicas
    count as covering (they can still start later, in time)."""
    kept = {v.name: min(v.status.committed, counts[v.name]) for v in usable}
    new = {v.name: max(0, counts[v.name] - v.status.committed) for v in usable}
    base = sum(v.capacity.requests_per_s * kept[v.name] for v in usable)
    started: dict[str, int] = {}
    done: list[PoolView] = []
    for v in sorted(usable, key=lambda v: (v.lead_s, v.name)):
        cover = base + sum(
            q.capacity.requests_per_s * (new[q.name] if q.lead_s < v.lead_s else started[q.name]) for q in done
        )
        shortfall = required(v.lead_s) - cover
        needed = 0 if shortfall <= 1e-9 else math.ceil(shortfall / v.capacity.requests_per_s - 1e-9)
        # a pool below its min fills it now, whatever the forecast
        below_min = v.spec.min_replicas - v.status.committed
        started[v.name] = min(new[v.name], max(needed, below_min))
        done.append(v)
    return {name: kept[name] + started[name] for name in kept}


def hold_until_replaced(usable: Sequence[PoolView], active: dict[str, int], demand_now: float) -> list[str]:
    """Make before break: when what stays active (not starting) after the planned
    removals would miss today's demand, keep the shrinking pools as they are
    (``active`` is updated). Returns the chips held back."""
    shrinking = [v for v in usable if active[v.name] < v.status.committed]
    if not shrinking:
        return []
    ready = sum(v.capacity.requests_per_s * min(v.status.active + v.status.standby, active[v.name]) for v in usable)
    if ready >= demand_now - 1e-9:
        return []
    for v in shrinking:
        active[v.name] = v.status.committed
    return [v.spec.chip for v in shrinking]


def standby_for(
    usable: Sequence[PoolView], active: Mapping[str, int], target: float, *, trusted_horizon_s: float, surge: float
) -> dict[str, int]:
    """Warm replicas of pools slower to start than ``trusted_horizon_s``, for a
    ``surge`` beyond the target that the faster pools' spare room cannot absorb."""
    slow = [v for v in usable if v.cold_start_s > trusted_horizon_s]
    if not slow or surge <= 0:
        return {}
    capacity = sum(v.capacity.requests_per_s * active[v.name] for v in usable)
    fast_room = sum(
        v.capacity.requests_per_s * max(0, v.spec.max_replicas - active[v.name])
        for v in usable
        if v.cold_start_s <= trusted_horizon_s
    )
    left = target * (1.0 + surge) - capacity - fast_room
    if left <= 1e-9:
        return {}
    options = [
        MixOption(v.name, v.capacity.requests_per_s, v.cost_micros, 0, max(0, v.spec.max_replicas - active[v.name]))
        for v in slow
    ]
    solution = cheapest_mix(options, left)
    if solution is None:
        return {o.key: o.high for o in options}
    return dict(solution.counts)
