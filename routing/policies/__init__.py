"""Routing policies and the one place that builds them by name."""

from __future__ import annotations

from routing.policies.base import Decision, RoutingPolicy
from routing.policies.cheapest import CheapestPolicy
from routing.policies.cost_latency import CostLatencyPolicy
from routing.policies.least_outstanding import LeastOutstandingPolicy
from routing.policies.lowest_latency import LowestLatencyPolicy
from routing.policies.prefix_affinity import PrefixAffinityPolicy
from routing.policies.round_robin import RoundRobinPolicy
from routing.settings import SLO

POLICY_NAMES: tuple[str, ...] = (
    "cost_latency",
    "round_robin",
    "least_outstanding",
    "lowest_latency",
    "cheapest",
    "prefix_affinity",
)


def make_policy(name: str, *, slo: SLO) -> RoutingPolicy:
    """A fresh policy object by config name; raises ValueError naming the choices."""
    if name == "cost_latency":
        return CostLatencyPolicy(slo=slo)
    if name == "round_robin":
        return RoundRobinPolicy()
    if name == "least_outstanding":
        return LeastOutstandingPolicy()
    if name == "lowest_latency":
        return LowestLatencyPolicy()
    if name == "cheapest":
        return CheapestPolicy()
    if name == "prefix_affinity":
        return PrefixAffinityPolicy()
    raise ValueError(f"unknown routing policy {name!r}; choose one of: {', '.join(POLICY_NAMES)}")


__all__ = ["Decision", "POLICY_NAMES", "RoutingPolicy", "make_policy"]
