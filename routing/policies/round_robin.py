"""round_robin: each model's replicas in turn, ignoring load and price (a baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.base import Decision, rotation_pick
from routing.replica import Replica
from routing.route import RouteRequest


class RoundRobinPolicy:
    """Rotates through candidates by id, per model."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        replica = rotation_pick(candidates, self._last.get(route.model))
        self._last[route.model] = replica.id
        return Decision(replica, "round robin")
