"""Routing plugins registered by name, and building a composed policy from its config.

    routing:
      policy:                       # instead of a preset name
        filters: [keeps_plan, slo]
        scorers:
          - {name: prefix_affinity, weight: 2}
          - {name: load, weight: 1}
          - {name: request_cost, weight: 1}
        picker: max_score           # or {name: ordered, params: {tie: id}}
        fallback: {scorers: [load]} # when the filters leave no replica

Each plugin's ``params`` are its constructor's keyword arguments (e.g. ``slo``:
``{headroom: 0.8, cost_slack: 1.5}``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from routing.plugins.filters import KeepsPlan, LatencyLimits, MeetsSlo, PrefixOwner, TooBigForSlo
from routing.plugins.pickers import MaxScore, Ordered
from routing.plugins.scorers import (
    CapacityCost,
    Headroom,
    Latency,
    Load,
    PrefixAffinity,
    Price,
    RequestCost,
    SloRatio,
    Ttft,
)


def _limits(headroom: float = 0.8, cost_slack: float = 1.5) -> LatencyLimits:
    return LatencyLimits(Headroom(headroom, headroom), cost_slack)


def _room(headroom: float = 0.8) -> Headroom:
    return Headroom(headroom, headroom)


FILTERS: MappingProxyType[str, Callable[..., Any]] = MappingProxyType({
    "slo": lambda **p: MeetsSlo(_limits(**p)),
    "too_big_for_slo": lambda **p: TooBigForSlo(_limits(**p)),
    "prefix_owner": lambda **p: PrefixOwner(**p),
    "keeps_plan": lambda: KeepsPlan(),
})
SCORERS: MappingProxyType[str, Callable[..., Any]] = MappingProxyType({
    "load": lambda: Load(),
    "price": lambda: Price(),
    "latency": lambda **p: Latency(**p),
    "ttft": lambda **p: Ttft(_room(**p)),
    "request_cost": lambda **p: RequestCost(_room(**p)),
    "capacity_cost": lambda **p: CapacityCost(headroom=_room(**p)),
    "slo_ratio": lambda **p: SloRatio(_room(**p)),
    "prefix_affinity": lambda: PrefixAffinity(),
})
PICKERS: MappingProxyType[str, Callable[..., Any]] = MappingProxyType({
    "max_score": lambda **p: MaxScore(**p),
    "ordered": lambda **p: Ordered(**p),
})


def build(kind: str, name: str, params: dict[str, Any]) -> Any:
    """A plugin instance; ValueError naming the choices or the bad parameter."""
    table = {"filter": FILTERS, "scorer": SCORERS, "picker": PICKERS}[kind]
    factory = table.get(name)
    if factory is None:
        raise ValueError(f"unknown routing {kind} {name!r}; choose one of: {', '.join(table)}")
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"routing {kind} {name!r}: bad params {params!r} ({exc})") from None
