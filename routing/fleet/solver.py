"""The cheapest integer mix of replicas whose capacity covers a demand, exactly.

    minimise  sum cost_i x_i   subject to  sum capacity_i x_i >= demand,
                                           low_i <= x_i <= high_i, x_i integer

A covering knapsack, small here (a few pools, tens of replicas each), solved by
depth-first branch and bound: options sorted by cost per unit of capacity, the
most of the best-ratio option tried first (a good first solution early), and a
branch cut when its cost plus the LP relaxation of the rest (the remaining demand
poured fractionally into the cheapest ratios) cannot beat the best found. Costs
are integers (e.g. micro-USD per hour), so ties and comparisons are exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MixOption:
    """One kind of unit: its capacity, integer cost and allowed count range."""

    key: str
    capacity: float
    cost: int
    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"option {self.key!r}: need 0 <= low <= high")
        if self.capacity < 0 or self.cost < 0:
            raise ValueError(f"option {self.key!r}: capacity and cost must be >= 0")


@dataclass(frozen=True, slots=True)
class Mix:
    """A solution: count per option key, its total cost and capacity."""

    counts: Mapping[str, int]
    cost: int
    capacity: float


def _tolerance(demand: float) -> float:
    return 1e-9 * max(1.0, abs(demand))


def cheapest_mix(options: Sequence[MixOption], demand: float) -> Mix | None:
    """The cheapest counts covering ``demand`` (None when even every option at
    its ``high`` cannot). Every option is at least at its ``low``."""
    if len({o.key for o in options}) != len(options):
        raise ValueError("option keys must be unique")
    eps = _tolerance(demand)
    counts = {o.key: o.low for o in options}
    base_cost = sum(o.cost * o.low for o in options)
    base_capacity = sum(o.capacity * o.low for o in options)
    # only options that add capacity are worth a unit above their low
    growable = sorted(
        (o for o in options if o.capacity > 0 and o.high > o.low),
        key=lambda o: (o.cost / o.capacity, -o.capacity, o.key),
    )
    residual = demand - base_capacity
    if residual <= eps:
        return Mix(counts, base_cost, base_capacity)
    if sum(o.capacity * (o.high - o.low) for o in growable) < residual - eps:
        return None

    best_cost = math.inf
    best: list[int] = []
    extra = [0] * len(growable)

    def relaxation(start: int, left: float) -> float:
        """Cheapest fractional cover of ``left`` by options ``start``.. (inf: none)."""
        cost = 0.0
        for option in growable[start:]:
            room = option.capacity * (option.high - option.low)
            if room >= left - eps:
                return cost + option.cost * max(0.0, left) / option.capacity
            cost += option.cost * (option.high - option.low)
            left -= room
        return math.inf

    def search(i: int, left: float, cost: int) -> None:
        nonlocal best_cost, best
        if left <= eps:
            if cost < best_cost:
                best_cost, best = cost, list(extra)
            return
        if i == len(growable):
            return
        bound = relaxation(i, left)
        if bound == math.inf or cost + math.ceil(bound - 1e-9) >= best_cost:
            return
        option = growable[i]
        top = min(option.high - option.low, math.ceil((left - eps) / option.capacity))
        for k in range(top, -1, -1):
            extra[i] = k
            search(i + 1, left - k * option.capacity, cost + k * option.cost)
        extra[i] = 0

    search(0, residual, 0)
    if best_cost == math.inf:
        return None
    for option, k in zip(growable, best, strict=True):
        counts[option.key] += k
    capacity = sum(o.capacity * counts[o.key] for o in options)
    return Mix(counts, base_cost + int(best_cost), capacity)
