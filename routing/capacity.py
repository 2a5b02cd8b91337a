"""Where a replica is cheapest: its efficient operating point under the SLO.

Fluid model of continuous batching with chunked prefill: a replica serving r
requests/s at batch B spends r x prefill(prompt) of each second prefilling and the
rest decoding, so r = 1 / (output x step(B) / B + prefill(prompt)) and the decode
steps stretch to TPOT = step(B) / (1 - r x prefill(prompt)). A new request's first
token comes at the end of the step that prefills it: TTFT = prefill(prompt) + TPOT.
The largest batch whose TPOT (and TTFT, when limited) stays within the limits is
where the replica's cost per token is lowest; that cost ranks replicas for "fill the
cheapest capacity first", and its request rate is the replica's SLO capacity for
the fleet planner.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.replica import PerformanceProfile


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A replica's most efficient steady state within the SLO limits."""

    batch: int
    requests_per_s: float
    tpot_s: float
    #: prefill of a mean prompt plus one stretched step
    ttft_s: float

    def cost_per_token(self, cost_per_second: float, output_tokens: float) -> float:
        """USD per output token at this point (busy all the time)."""
        return cost_per_second / (self.requests_per_s * output_tokens)


def efficient_point(
    profile: PerformanceProfile,
    *,
    prompt_tokens: float,
    output_tokens: float,
    tpot_limit_s: float,
    ttft_limit_s: float | None = None,
    step_scale: float = 1.0,
) -> OperatingPoint | None:
    """The largest-throughput batch with TPOT <= ``tpot_limit_s`` and, when given,
    TTFT <= ``ttft_limit_s`` (None: not even batch 1 meets them). ``step_scale``
    corrects the profile's step times (calibration)."""
    prefill = profile.prefill_time_s(max(0, round(prompt_tokens)))
    output = max(1.0, output_tokens)

    def point(batch: int) -> OperatingPoint | None:
        step = profile.step_time_s(batch) * step_scale
        rate = 1.0 / (output * step / batch + prefill)
        busy_prefilling = rate * prefill
        if busy_prefilling >= 1.0:
            return None
        tpot = step / (1.0 - busy_prefilling)
        return OperatingPoint(batch, rate, tpot, prefill + tpot)

    def within(candidate: OperatingPoint | None) -> bool:
        return (
            candidate is not None
            and candidate.tpot_s <= tpot_limit_s
            and (ttft_limit_s is None or candidate.ttft_s <= ttft_limit_s)
        )

    first = point(1)
    if first is None or not within(first):
        return None
    # TPOT and TTFT grow with the batch (longer steps, more prefill per second): bisect
    low, high = 1, max(1, profile.max_batch)
    best = first
    while low < high:
        mid = (low + high + 1) // 2
        candidate = point(mid)
        if within(candidate):
            assert candidate is not None
            best, low = candidate, mid
        else:
            high = mid - 1
    return best
