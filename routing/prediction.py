"""Predict how a request would fare on a replica: TTFT, TPOT and cost per token.

The model follows vLLM's continuous batching with chunked prefill: the request
joins the running batch, so its TPOT is the decode step time at the new batch
size, stretched by the prefill work other arrivals interleave into the steps;
its TTFT is the prefill of the prompts ahead of it (ours included) plus one step;
beyond the engine's max batch it queues. A chip profile gives the shape; live
telemetry calibrates it (observed / predicted EWMA over the same requests). A
replica with no profile is predicted from its EWMAs alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routing.replica import Replica, profile_tpot_s
from routing.route import RouteRequest

#: when nothing is known about typical output lengths
_DEFAULT_OUTPUT_TOKENS = 128.0


@dataclass(frozen=True, slots=True)
class Prediction:
    """Expected behaviour of one request on one replica (None: unknown)."""

    ttft_s: float | None
    tpot_s: float | None
    #: sequences the replica would be decoding with this request admitted
    batch: int
    #: output tokens the replica would be expected to write for this request
    output_tokens: float
    #: replica busy seconds attributable to this request: its own prefill plus
    #: its share of each decode step (None: unknown)
    replica_seconds: float | None

    @property
    def latency_s(self) -> float | None:
        if self.ttft_s is None or self.tpot_s is None:
            return None
        return self.ttft_s + self.tpot_s * max(0.0, self.output_tokens - 1)

    def cost_per_token(self, cost_per_second: float) -> float | None:
        """Expected USD per output token of this request on this replica.

        A busy replica's decode share is small: another sequence in the batch is
        almost free, which is what keeps cheap capacity full.
        """
        if self.replica_seconds is None:
            return None
        return cost_per_second * self.replica_seconds / self.output_tokens


def expected_output_tokens(replica: Replica, route: RouteRequest) -> float:
    """Output tokens to expect: the replica's recent mean, capped by max_tokens."""
    typical = replica.telemetry.output_tokens or _DEFAULT_OUTPUT_TOKENS
    return max(1.0, min(float(route.max_tokens), typical))


def pooled_output_tokens(replicas: Sequence[Replica], route: RouteRequest) -> float:
    """Output tokens to expect, pooled over replicas (one estimate for all, so
    comparisons between replicas are not skewed by which got the short answers)."""
    known = [(r.telemetry.output_tokens, r.telemetry.requests) for r in replicas if r.telemetry.output_tokens]
    weight = sum(max(1, n) for _, n in known)
    typical = sum(t * max(1, n) for t, n in known) / weight if known else _DEFAULT_OUTPUT_TOKENS
    return max(1.0, min(float(route.max_tokens), typical))


def predict(replica: Replica, route: RouteRequest, *, output_tokens: float | None = None) -> Prediction:
    """Predict TTFT/TPOT/cost of ``route`` placed on ``replica`` now
    (``output_tokens``: the expected output length, default the replica's mean)."""
    telemetry = replica.telemetry
    sequences = max(1, route.n)
    load = telemetry.outstanding_sequences()
    output = expected_output_tokens(replica, route) if output_tokens is None else output_tokens
    batch = load + sequences
    profile = replica.profile
    if profile is None:
        tpot = telemetry.tpot_s
        share = output * sequences * tpot / batch if tpot else None
        return Prediction(telemetry.ttft_s, tpot, batch, output, share)

    max_batch = max(1, profile.max_batch)
    running = min(batch, max_batch)
    step = profile.step_time_s(running)
    queue_wait = 0.0
    if batch > max_batch:
        # slots free as sequences finish: max_batch of them per (typical length x step)
        typical = telemetry.output_tokens or _DEFAULT_OUTPUT_TOKENS
        queue_wait = (batch - max_batch) / max_batch * typical * step
    prompt = max(0, route.prompt_tokens)
    backlog = max(0, telemetry.prefill_backlog_tokens)
    ttft = queue_wait + profile.prefill_time_s(backlog + prompt) + step
    tpot = profile_tpot_s(profile, running, telemetry.prompt_tokens_per_s())
    ttft *= telemetry.ttft_calibration() or 1.0
    calibration = telemetry.tpot_calibration() or 1.0
    tpot *= calibration
    share = profile.prefill_time_s(prompt) + output * sequences * step * calibration / running
    return Prediction(ttft, tpot, running, output, share)
