"""cost_latency (default): the cheapest capacity predicted to meet the latency SLO;
best effort when none is.

Each candidate gets a predicted TTFT and TPOT for this request (routing.prediction:
chip profile at the batch size the request would join, stretched by interleaved
prefill, calibrated by live telemetry). Candidates meeting the SLO (TTFT and TPOT,
keeping ``headroom`` for prediction error) are ranked by cost per output token:

1. first by the cost per token the replica reaches when filled to the SLO (its
   efficient operating point, routing.capacity), so load pours into the cheapest
   capacity first and expensive replicas are only woken when cheaper ones are full;
2. then by this request's expected cost per output token on it, $/s x (its own
   prefill + its share of each decode step at the new batch size) / output tokens.
   A busy replica's share is small (batching is nearly free), so among equally
   efficient replicas the busiest takes the request and idle ones can scale in.

Preferences: ``max_ttft_ms`` replaces the SLO's TTFT; ``prefer: latency`` takes the
fastest predicted; ``prefer: cost`` widens the SLO by ``cost_slack`` before taking
the cheapest. An unmeetable SLO is best effort, never an error: a request too big
to meet it anywhere goes to the fastest ("slo unmet: fastest"); in an overloaded
pool requests are spread by load ("slo unmet: least loaded").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from routing.capacity import efficient_point
from routing.policies.base import Decision
from routing.policies.lowest_latency import latency_key
from routing.prediction import Prediction, pooled_output_tokens, predict
from routing.replica import Replica
from routing.route import RouteRequest
from routing.settings import SLO

#: capacity costs within ~3% of each other count as equal (then load decides)
_COST_BUCKET = math.log(1.03)
_PROMPT_ALPHA = 0.05
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _Scored:
    replica: Replica
    prediction: Prediction
    ttft_s: float
    tpot_s: float
    cost_per_token: float
    capacity_rank: int
    #: the request's own prefill time there (0 when unknown)
    own_prefill_s: float

    def slo_ratio(self, ttft_slo_s: float, tpot_slo_s: float) -> float:
        """How far over the SLO (<= 1 meets it); the worse of TTFT and TPOT."""
        return max(self.ttft_s / ttft_slo_s, self.tpot_s / tpot_slo_s)

    def meets(self, ttft_limit_s: float, tpot_limit_s: float) -> bool:
        return self.ttft_s <= ttft_limit_s and self.tpot_s <= tpot_limit_s


class CostLatencyPolicy:
    """Cheapest capacity per output token among candidates predicted to meet the SLO."""

    name = "cost_latency"

    def __init__(
        self,
        *,
        slo: SLO,
        headroom: float = 0.8,
        ttft_headroom: float | None = None,
        cost_slack: float = 1.5,
    ) -> None:
        if not 0 < headroom <= 1 or not 0 < (ttft_headroom or headroom) <= 1:
            raise ValueError("headroom must be in (0, 1]")
        self.slo = slo
        self.headroom = headroom
        # TTFT swings with bursts of long prompts more than TPOT does: it may keep more
        self.ttft_headroom = headroom if ttft_headroom is None else ttft_headroom
        self.cost_slack = cost_slack
        self._prompt_mean: dict[str, float] = {}
        self._capacity_cache: dict[tuple[object, ...], float] = {}

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        preference = route.preference
        ttft_slo = (preference.max_ttft_ms or self.slo.ttft_ms) / 1000.0
        tpot_slo = self.slo.tpot_ms / 1000.0
        prompt_mean = self._observe_prompt(route)
        output = pooled_output_tokens(candidates, route)
        scored = [self._score(r, route, ttft_slo, tpot_slo, prompt_mean, output) for r in candidates]

        if preference.prefer == "latency":
            best = min(scored, key=lambda s: (latency_key(s.prediction), s.cost_per_token, s.replica.id))
            return self._decide(best, "prefer latency: fastest")

        slack = self.cost_slack if preference.prefer == "cost" else 1.0
        ttft_limit = ttft_slo * self.ttft_headroom * slack
        tpot_limit = tpot_slo * self.headroom * slack
        meeting = [s for s in scored if s.meets(ttft_limit, tpot_limit)]
        if meeting:
            best = min(meeting, key=lambda s: (s.capacity_rank, s.cost_per_token, s.ttft_s, s.replica.id))
            reason = "prefer cost: cheapest meeting slo" if preference.prefer == "cost" else "cheapest meeting slo"
            return self._decide(best, reason)
        # Nothing meets the SLO. A request too big for any replica (its own prefill
        # alone misses the TTFT) goes to the fastest. An overloaded pool (everything
        # at its limit, where predictions are least reliable and one more sequence
        # slows a whole batch) is spread by load, like least_outstanding: measured,
        # that keeps more requests within the SLO than piling onto the fastest.
        if all(s.own_prefill_s > ttft_limit for s in scored):
            best = min(scored, key=lambda s: (s.slo_ratio(ttft_slo, tpot_slo), s.cost_per_token, s.replica.id))
            return self._decide(best, "slo unmet: fastest")
        best = min(scored, key=lambda s: (s.replica.telemetry.outstanding_sequences(), s.ttft_s, s.replica.id))
        return self._decide(best, "slo unmet: least loaded")

    def _observe_prompt(self, route: RouteRequest) -> float:
        mean = self._prompt_mean.get(route.model)
        mean = float(route.prompt_tokens) if mean is None else mean + _PROMPT_ALPHA * (route.prompt_tokens - mean)
        self._prompt_mean[route.model] = mean
        return mean

    def _score(
        self,
        replica: Replica,
        route: RouteRequest,
        ttft_slo: float,
        tpot_slo: float,
        prompt_mean: float,
        output: float,
    ) -> _Scored:
        prediction = predict(replica, route, output_tokens=output)
        # nothing known yet (no profile, no traffic): assume it just meets the SLO,
        # so it gets some traffic and telemetry learns what it really does
        ttft = prediction.ttft_s if prediction.ttft_s is not None else ttft_slo * 0.95 * self.ttft_headroom
        tpot = prediction.tpot_s if prediction.tpot_s is not None else tpot_slo * 0.95 * self.headroom
        cost = prediction.cost_per_token(replica.cost_per_second)
        if cost is None:
            cost = replica.cost_per_second * tpot / prediction.batch
        capacity = self._capacity_cost(replica, prompt_mean, prediction.output_tokens, tpot_slo)
        rank_cost = cost if capacity is None else min(cost, capacity)
        own_prefill = replica.profile.prefill_time_s(max(0, route.prompt_tokens)) if replica.profile else 0.0
        return _Scored(
            replica, prediction, ttft, tpot, cost, round(math.log(rank_cost) / _COST_BUCKET), own_prefill
        )

    def _capacity_cost(self, replica: Replica, prompt: float, output: float, tpot_slo: float) -> float | None:
        """Cost per token of ``replica`` filled to the SLO (None: no profile)."""
        profile = replica.profile
        if profile is None:
            return None
        # from the profile alone: calibration is noisy at low batch, and a ranking
        # that flips between near-equal chips would wake them all
        key = (replica.id, replica.cost_per_second, round(prompt, -1), round(output, -1))
        if key not in self._capacity_cache:
            if len(self._capacity_cache) >= _CACHE_LIMIT:
                self._capacity_cache.clear()
            point = efficient_point(
                profile,
                prompt_tokens=prompt,
                output_tokens=output,
                tpot_limit_s=tpot_slo * self.headroom,
            )
            self._capacity_cache[key] = (
                math.inf if point is None else point.cost_per_token(replica.cost_per_second, output)
            )
        return self._capacity_cache[key]

    @staticmethod
    def _decide(best: _Scored, reason: str) -> Decision:
        return Decision(best.replica, reason, best.prediction.ttft_s, best.prediction.tpot_s)

