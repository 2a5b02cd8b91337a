"""The named policies, as compositions of filters, scorers and pickers.

Each reproduces the hand-written policy it replaced exactly (the routing
benchmark's table is unchanged); ``routing.policy`` in the config takes one of
these names or a composition of its own (``routing.plugins``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from routing.plugins.filters import KeepsPlan, LatencyLimits, MeetsSlo, PrefixOwner, TooBigForSlo
from routing.plugins.pickers import Ordered
from routing.plugins.scorers import (
    CapacityCost,
    Headroom,
    Latency,
    Load,
    Price,
    RequestCost,
    SloRatio,
    Ttft,
)
from routing.policies.composed import ComposedPolicy, Profile
from routing.settings import SLO


def cost_latency(slo: SLO, *, headroom: float = 0.8, cost_slack: float = 1.5) -> ComposedPolicy:
    """The cheapest capacity predicted to meet the SLO (then the request's own marginal
    cost, then TTFT); best effort when none is: a request too big for any replica goes to
    the fastest, an overloaded pool is spread by load. Replicas the fleet plan is about to
    drain take nothing while others can."""
    room = Headroom(tpot=headroom, ttft=headroom)
    limits = LatencyLimits(room, cost_slack)
    least_loaded = Profile("least loaded", (), ((Load(), 1), (Ttft(room), 1)), Ordered(), predictions="pooled")
    fastest = Profile(
        "fastest", (TooBigForSlo(limits),), ((SloRatio(room), 1), (RequestCost(room), 1)), Ordered(),
        fallback=least_loaded, predictions="pooled",
    )
    cheapest = ((CapacityCost(headroom=room), 1), (RequestCost(room), 1), (Ttft(room), 1))
    plan, slo_met = KeepsPlan(), MeetsSlo(limits)
    return ComposedPolicy(
        "cost_latency",
        {
            None: Profile("cheapest meeting slo", (plan, slo_met), cheapest, Ordered(), fastest, "pooled"),
            "cost": Profile("prefer cost: cheapest meeting slo", (plan, slo_met), cheapest, Ordered(), fastest, "pooled"),
            "latency": Profile(
                "prefer latency: fastest", (), ((Latency(), 1), (RequestCost(room), 1)), Ordered(),
                predictions="pooled",
            ),
        },
        slo=slo,
    )


def round_robin(slo: SLO) -> ComposedPolicy:
    """Each model's replicas in turn, ignoring load and price (a baseline)."""
    return ComposedPolicy("round_robin", {None: Profile("round robin", (), (), Ordered(tie="rotate"))}, slo=slo)


def least_outstanding(slo: SLO) -> ComposedPolicy:
    """The fewest sequences in flight; ties rotate (a baseline)."""
    return ComposedPolicy(
        "least_outstanding", {None: Profile("least outstanding", (), ((Load(), 1),), Ordered(tie="rotate"))}, slo=slo
    )


def lowest_latency(slo: SLO) -> ComposedPolicy:
    """The lowest predicted latency with each replica's own typical output length (price ignored)."""
    profile = Profile("lowest predicted latency", (), ((Latency(output="own"), 1),), Ordered(), predictions="own")
    return ComposedPolicy("lowest_latency", {None: profile}, slo=slo)


def cheapest(slo: SLO) -> ComposedPolicy:
    """The lowest $/hour whatever its speed or load; ties to the least loaded."""
    return ComposedPolicy(
        "cheapest", {None: Profile("cheapest per hour", (), ((Price(), 1), (Load(), 1)), Ordered())}, slo=slo
    )


def prefix_affinity(slo: SLO, *, imbalance: float = 2.0, slack: int = 4) -> ComposedPolicy:
    """Requests sharing a prompt prefix go to the same replica (its KV cache hits) unless it
    is overloaded; then the least loaded, rotating."""
    least_loaded = Profile("least loaded", (), ((Load(), 1),), Ordered(tie="rotate"))
    owner = Profile("prefix affinity", (PrefixOwner(imbalance, slack),), (), Ordered(), fallback=least_loaded)
    return ComposedPolicy("prefix_affinity", {None: owner}, slo=slo)


PRESETS: MappingProxyType[str, Callable[[SLO], ComposedPolicy]] = MappingProxyType({
    "cost_latency": cost_latency,
    "round_robin": round_robin,
    "least_outstanding": least_outstanding,
    "lowest_latency": lowest_latency,
    "cheapest": cheapest,
    "prefix_affinity": prefix_affinity,
})
