"""Predict how a request would fare on a replica: TTFT, TPOT and cost per token.

The model follows vLLM's continuous batching: the request joins the running
batch, so its TPOT is the decode step time at the new batch size and its TTFT is
the prefill of the prompts ahead of it (ours included) plus one step; beyond the
engine's max batch it queues. A chip profile gives the shape; live telemetry
calibrates it (observed / predicted EWMA over the same requests). A replica with
no profile is predicted from its EWMAs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.replica import Replica
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
    #: replica-wide output tokens/s at that batch (None: unknown)
    tokens_per_s: float | None

    @property
    def latency_s(self) -> float | None:
        if self.ttft_s is None or self.tpot_s is None:
            return None
        return self.ttft_s + self.tpot_s * max(0.0, self.output_tokens - 1)

    def cost_per_token(self, cost_per_second: float) -> float | None:
        """USD per output token while the replica runs at the new batch size.

        A busy replica's cost per token is low: another sequence in the batch is
        almost free, which is what keeps cheap capacity full.
        """
        if not self.tokens_per_s:
            return None
        return cost_per_second / self.tokens_per_s


def expected_output_tokens(replica: Replica, route: RouteRequest) -> float:
    """Output tokens to expect: the replica's recent mean, capped by max_tokens."""
    typical = replica.telemetry.output_tokens or _DEFAULT_OUTPUT_TOKENS
    return max(1.0, min(float(route.max_tokens), typical))


def predict(replica: Replica, route: RouteRequest) -> Prediction:
    """Predict TTFT/TPOT/throughput of ``route`` placed on ``replica`` now."""
    telemetry = replica.telemetry
    sequences = max(1, route.n)
    load = telemetry.outstanding_sequences()
    output = expected_output_tokens(replica, route)
    profile = replica.profile
    if profile is None:
        tpot = telemetry.tpot_s
        ttft = telemetry.ttft_s
        batch = load + sequences
        return Prediction(ttft, tpot, batch, output, batch / tpot if tpot else None)

    max_batch = max(1, profile.max_batch)
    batch = load + sequences
    running = min(batch, max_batch)
    step = profile.step_time_s(running)
    queue_wait = 0.0
    if batch > max_batch:
        # slots free as sequences finish: max_batch of them per (typical length x step)
        typical = telemetry.output_tokens or _DEFAULT_OUTPUT_TOKENS
        queue_wait = (batch - max_batch) / max_batch * typical * step
    backlog = max(0, telemetry.prefill_backlog_tokens)
    ttft = queue_wait + profile.prefill_time_s(backlog + max(0, route.prompt_tokens)) + step
    tpot = step
    ttft *= telemetry.ttft_calibration() or 1.0
    tpot *= telemetry.tpot_calibration() or 1.0
    return Prediction(ttft, tpot, running, output, running / tpot if tpot > 0 else None)
