"""cheapest: the lowest $/hour replica, whatever its speed or load."""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.base import Decision
from routing.replica import Replica
from routing.route import RouteRequest


class CheapestPolicy:
    """Lowest cost_per_hour; ties go to the least loaded, then by id."""

    name = "cheapest"

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        replica = min(
            candidates,
            key=lambda r: (r.cost_per_hour, r.telemetry.outstanding_sequences(), r.id),
        )
        return Decision(replica, "cheapest per hour")
