"""cost_latency (default): the cheapest replica per output token that is predicted
to meet the latency SLO; the fastest one when none is.

Each candidate gets a predicted TTFT and TPOT for this request (routing.prediction:
chip profile at the batch size the request would join, calibrated by live
telemetry). Candidates meeting the SLO (TTFT and TPOT, with ``headroom`` kept for
prediction error) are ranked by expected cost per output token: $/s x (the request's own prefill time + its
share of each decode step at the new batch size) / output tokens, i.e.
cost_per_hour / (3600 x tokens/s the replica delivers at that batch) plus the
prefill. A busy replica adds a sequence to its batch almost for free, so traffic
fills cheap capacity first and expensive, idle replicas stay idle (and can be
scaled in).

Preferences: ``max_ttft_ms`` replaces the SLO's TTFT; ``prefer: latency`` takes the
fastest predicted; ``prefer: cost`` widens the SLO by ``cost_slack`` before taking
the cheapest. An unmeetable SLO is best effort: "slo unmet: fastest".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.config import SLO
from routing.policies.base import Decision
from routing.policies.lowest_latency import latency_key
from routing.prediction import Prediction, predict
from routing.replica import Replica
from routing.route import RouteRequest


@dataclass(frozen=True, slots=True)
class _Scored:
    replica: Replica
    prediction: Prediction
    ttft_s: float
    tpot_s: float
    cost_per_token: float

    def slo_ratio(self, ttft_slo_s: float, tpot_slo_s: float) -> float:
        """How far over the SLO (<= 1 meets it); the worse of TTFT and TPOT."""
        return max(self.ttft_s / ttft_slo_s, self.tpot_s / tpot_slo_s)


class CostLatencyPolicy:
    """Cheapest per output token among candidates predicted to meet the SLO."""

    name = "cost_latency"

    def __init__(self, *, slo: SLO, headroom: float = 0.8, cost_slack: float = 1.5) -> None:
        if not 0 < headroom <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.slo = slo
        self.headroom = headroom
        self.cost_slack = cost_slack

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        preference = route.preference
        ttft_slo = (preference.max_ttft_ms or self.slo.ttft_ms) / 1000.0
        tpot_slo = self.slo.tpot_ms / 1000.0
        scored = [self._score(r, route, ttft_slo, tpot_slo) for r in candidates]

        if preference.prefer == "latency":
            best = min(scored, key=lambda s: (latency_key(s.prediction), s.cost_per_token, s.replica.id))
            return self._decide(best, "prefer latency: fastest")

        budget = self.headroom * (self.cost_slack if preference.prefer == "cost" else 1.0)
        meeting = [s for s in scored if s.slo_ratio(ttft_slo, tpot_slo) <= budget]
        if meeting:
            best = min(meeting, key=lambda s: (s.cost_per_token, s.ttft_s, s.replica.id))
            reason = "prefer cost: cheapest meeting slo" if preference.prefer == "cost" else "cheapest meeting slo"
            return self._decide(best, reason)
        best = min(scored, key=lambda s: (s.slo_ratio(ttft_slo, tpot_slo), s.cost_per_token, s.replica.id))
        return self._decide(best, "slo unmet: fastest")

    def _score(self, replica: Replica, route: RouteRequest, ttft_slo: float, tpot_slo: float) -> _Scored:
        prediction = predict(replica, route)
        # nothing known yet (no profile, no traffic): assume it just meets the SLO,
        # so it gets some traffic and telemetry learns what it really does
        assumed = 0.95 * self.headroom
        ttft = prediction.ttft_s if prediction.ttft_s is not None else ttft_slo * assumed
        tpot = prediction.tpot_s if prediction.tpot_s is not None else tpot_slo * assumed
        cost = prediction.cost_per_token(replica.cost_per_second)
        if cost is None:
            cost = replica.cost_per_second * tpot / prediction.batch
        return _Scored(replica, prediction, ttft, tpot, cost)

    @staticmethod
    def _decide(best: _Scored, reason: str) -> Decision:
        return Decision(best.replica, reason, best.prediction.ttft_s, best.prediction.tpot_s)
