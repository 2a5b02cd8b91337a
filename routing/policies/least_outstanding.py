"""least_outstanding: the replica with the fewest sequences in flight (a baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.base import Decision, rotation_pick
from routing.replica import Replica
from routing.route import RouteRequest


class LeastOutstandingPolicy:
    """Fewest outstanding sequences (ours or the engine's count); ties rotate."""

    name = "least_outstanding"

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        fewest = min(r.telemetry.outstanding_sequences() for r in candidates)
        tied = [r for r in candidates if r.telemetry.outstanding_sequences() == fewest]
        replica = rotation_pick(tied, self._last.get(route.model))
        self._last[route.model] = replica.id
        return Decision(replica, "least outstanding")
