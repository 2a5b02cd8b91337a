"""lowest_latency: the replica predicted to finish this request soonest."""

from __future__ import annotations

from collections.abc import Sequence

from routing.policies.base import Decision
from routing.prediction import Prediction, predict
from routing.replica import Replica
from routing.route import RouteRequest


def latency_key(prediction: Prediction) -> float:
    """Sort key: predicted end-to-end latency, unknown last."""
    latency = prediction.latency_s
    return float("inf") if latency is None else latency


class LowestLatencyPolicy:
    """Minimum predicted TTFT + TPOT x expected output tokens (price ignored)."""

    name = "lowest_latency"

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        scored = [(latency_key(p), r.id, r, p) for r in candidates for p in (predict(r, route),)]
        _, _, replica, prediction = min(scored, key=lambda s: (s[0], s[1]))
        return Decision(replica, "lowest predicted latency", prediction.ttft_s, prediction.tpot_s)
