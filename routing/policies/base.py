"""The routing policy seam: given routable candidates, pick one and say why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from routing.replica import Replica
from routing.route import RouteRequest


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen replica, a short reason (a metrics label) and what was predicted.

    Predictions, when a policy makes them, let telemetry calibrate the model.
    """

    replica: Replica
    reason: str
    predicted_ttft_s: float | None = None
    predicted_tpot_s: float | None = None


class RoutingPolicy(Protocol):
    """Chooses a replica. ``candidates`` is non-empty and already filtered: routable
    replicas of the request's model that satisfy its chip preference."""

    name: str

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        """Pick one of ``candidates``; never I/O, never blocks."""
        ...

