"""Filters: which candidates may serve this request.

| name | keeps |
|---|---|
| ``slo`` | replicas predicted to meet the TTFT and TPOT SLO (with headroom; ``prefer: cost`` widens it by ``cost_slack``; ``max_ttft_ms`` replaces the TTFT SLO) |
| ``too_big_for_slo`` | everyone, when the request's own prefill misses the TTFT everywhere (else no one): a gate for "go to the fastest" |
| ``prefix_owner`` | the replica the prompt prefix hashes to, while its load allows (bounded-load hashing) |
| ``keeps_plan`` | replicas the fleet plan keeps, unless only retiring ones are left |

The router itself applies the hard ones before any policy runs: only routable
replicas (active, breaker closed, not marked busy) of the model, on the chips the
caller asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.plugins.base import Context, Limits
from routing.plugins.scorers import Headroom, effective_tpot, effective_ttft, prefix_owner
from routing.replica import Replica


@dataclass(slots=True)
class LatencyLimits:
    """How a filter turns the SLO into limits: headroom, and the slack ``prefer: cost`` allows."""

    headroom: Headroom = field(default_factory=Headroom)
    cost_slack: float = 1.5

    def of(self, ctx: Context) -> Limits:
        slack = self.cost_slack if ctx.route.preference.prefer == "cost" else 1.0
        return ctx.limits(ttft_headroom=self.headroom.ttft, tpot_headroom=self.headroom.tpot, slack=slack)


@dataclass(slots=True)
class MeetsSlo:
    limits: LatencyLimits = field(default_factory=LatencyLimits)
    name: str = "slo"

    def filter(self, candidates: list[Replica], ctx: Context) -> list[Replica]:
        limits = self.limits.of(ctx)
        headroom = self.limits.headroom
        kept = [
            r for r in candidates
            if effective_ttft(r, ctx, headroom) <= limits.ttft_limit_s
            and effective_tpot(r, ctx, headroom) <= limits.tpot_limit_s
        ]
        if not kept:
            ctx.why_empty = "slo unmet"
        return kept


@dataclass(slots=True)
class TooBigForSlo:
    limits: LatencyLimits = field(default_factory=LatencyLimits)
    name: str = "too_big_for_slo"

    def filter(self, candidates: list[Replica], ctx: Context) -> list[Replica]:
        limit = self.limits.of(ctx).ttft_limit_s
        prompt = max(0, ctx.route.prompt_tokens)

        def own_prefill(replica: Replica) -> float:
            return replica.profile.prefill_time_s(prompt) if replica.profile else 0.0

        return list(candidates) if all(own_prefill(r) > limit for r in candidates) else []


@dataclass(slots=True)
class PrefixOwner:
    """The owner is passed over when it holds more than ``imbalance`` x the least loaded
    candidate's sequences (+ ``slack``), or is at its engine's max batch."""

    imbalance: float = 2.0
    slack: int = 4
    name: str = "prefix_owner"

    def filter(self, candidates: list[Replica], ctx: Context) -> list[Replica]:
        key = ctx.route.prefix_key
        if key is None:
            ctx.why_empty = "no prefix"
            return []
        owner = prefix_owner(candidates, key)
        fewest = min(r.telemetry.outstanding_sequences() for r in candidates)
        load = owner.telemetry.outstanding_sequences()
        full = owner.profile is not None and load + ctx.route.n > owner.profile.max_batch
        if full or load > self.imbalance * fewest + self.slack:
            ctx.why_empty = "prefix owner busy"
            return []
        return [owner]


class KeepsPlan:
    """Steers away from replicas the fleet plan is about to drain (``Replica.retiring``)."""

    name = "keeps_plan"

    def filter(self, candidates: list[Replica], ctx: Context) -> list[Replica]:
        kept = [r for r in candidates if not r.retiring]
        return kept or list(candidates)
