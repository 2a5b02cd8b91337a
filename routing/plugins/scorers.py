"""Scorers: one value per candidate, each a single idea.

| name | value (direction) |
|---|---|
| ``load`` | sequences outstanding on the replica (lower) |
| ``price`` | the replica's $/hour (lower) |
| ``latency`` | predicted end-to-end latency of this request (lower) |
| ``ttft`` | predicted time to first token (lower) |
| ``request_cost`` | this request's expected $/output token there: its prefill plus its share of each decode step at the new batch, so a busy replica's next token is nearly free (lower) |
| ``capacity_cost`` | $/output token of the replica filled to the SLO (its efficient point), in 3% buckets: cheap capacity fills first (lower) |
| ``slo_ratio`` | how far over the SLO the prediction is, the worse of TTFT and TPOT (lower) |
| ``prefix_affinity`` | 0 for the replica the prompt prefix hashes to, 1 for the others (lower) |

An unknown prediction (no profile, no traffic yet) counts as just meeting the SLO,
so the replica gets some traffic and telemetry learns what it does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from routing.capacity import efficient_point
from routing.plugins.base import Context
from routing.replica import Replica

#: capacity costs within ~3% of each other count as equal (then the next scorer decides)
_COST_BUCKET = math.log(1.03)
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Headroom:
    """Share of the SLO a prediction may use (predictions err; TTFT swings with bursts)."""

    tpot: float = 0.8
    ttft: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.tpot <= 1 or not 0 < self.ttft <= 1:
            raise ValueError("headroom must be in (0, 1]")


def effective_ttft(replica: Replica, ctx: Context, headroom: Headroom) -> float:
    predicted = ctx.prediction(replica).ttft_s
    if predicted is not None:
        return predicted
    ttft_slo = (ctx.route.preference.max_ttft_ms or ctx.slo.ttft_ms) / 1000.0
    return ttft_slo * 0.95 * headroom.ttft


def effective_tpot(replica: Replica, ctx: Context, headroom: Headroom) -> float:
    predicted = ctx.prediction(replica).tpot_s
    return predicted if predicted is not None else ctx.slo.tpot_ms / 1000.0 * 0.95 * headroom.tpot


def request_cost(replica: Replica, ctx: Context, headroom: Headroom) -> float:
    prediction = ctx.prediction(replica)
    cost = prediction.cost_per_token(replica.cost_per_second)
    if cost is None:
        cost = replica.cost_per_second * effective_tpot(replica, ctx, headroom) / prediction.batch
    return cost


class Load:
    name = "load"
    lower_is_better = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        return [float(r.telemetry.outstanding_sequences()) for r in candidates]


class Price:
    name = "price"
    lower_is_better = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        return [float(r.cost_per_hour) for r in candidates]


class Latency:
    """``output: pooled`` compares every candidate on one expected output length;
    ``own`` uses each replica's own typical length."""

    name = "latency"
    lower_is_better = True

    def __init__(self, *, output: str = "pooled") -> None:
        if output not in ("pooled", "own"):
            raise ValueError("latency: output must be 'pooled' or 'own'")
        self.own = output == "own"

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        out = []
        for replica in candidates:
            latency = (ctx.own_prediction(replica) if self.own else ctx.prediction(replica)).latency_s
            out.append(math.inf if latency is None else latency)
        return out


@dataclass(slots=True)
class Ttft:
    headroom: Headroom = field(default_factory=Headroom)
    name: str = "ttft"
    lower_is_better: bool = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        return [effective_ttft(r, ctx, self.headroom) for r in candidates]


@dataclass(slots=True)
class RequestCost:
    headroom: Headroom = field(default_factory=Headroom)
    name: str = "request_cost"
    lower_is_better: bool = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        return [request_cost(r, ctx, self.headroom) for r in candidates]


@dataclass(slots=True)
class SloRatio:
    headroom: Headroom = field(default_factory=Headroom)
    name: str = "slo_ratio"
    lower_is_better: bool = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        ttft_slo = (ctx.route.preference.max_ttft_ms or ctx.slo.ttft_ms) / 1000.0
        tpot_slo = ctx.slo.tpot_ms / 1000.0
        return [
            max(effective_ttft(r, ctx, self.headroom) / ttft_slo, effective_tpot(r, ctx, self.headroom) / tpot_slo)
            for r in candidates
        ]


class CapacityCost:
    """Bucketed cost per token of each replica at its efficient operating point under the SLO."""

    name = "capacity_cost"
    lower_is_better = True

    def __init__(self, *, headroom: Headroom | None = None) -> None:
        self.headroom = headroom or Headroom()
        self._cache: dict[tuple[object, ...], float] = {}

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        out = []
        for replica in candidates:
            cost = request_cost(replica, ctx, self.headroom)
            capacity = self._filled(replica, ctx)
            rank_cost = cost if capacity is None else min(cost, capacity)
            out.append(float(round(math.log(rank_cost) / _COST_BUCKET)))
        return out

    def _filled(self, replica: Replica, ctx: Context) -> float | None:
        """Cost per token of ``replica`` filled to the SLO (None: no profile)."""
        profile = replica.profile
        if profile is None:
            return None
        # from the profile alone: calibration is noisy at low batch, and a ranking
        # that flips between near-equal chips would wake them all. Computed from the
        # rounded sizes, so a cached value does not depend on when it was first asked for.
        prompt, output = round(ctx.prompt_mean, -1), round(ctx.prediction(replica).output_tokens, -1)
        key = (replica.id, replica.cost_per_second, prompt, output)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            point = efficient_point(
                profile, prompt_tokens=prompt, output_tokens=max(1.0, output),
                tpot_limit_s=ctx.slo.tpot_ms / 1000.0 * self.headroom.tpot,
            )
            self._cache[key] = (
                math.inf if point is None else point.cost_per_token(replica.cost_per_second, max(1.0, output))
            )
        return self._cache[key]


def rendezvous_weight(prefix_key: str, replica_id: str) -> int:
    """Stable hash weight of a (prefix, replica) pair; the same on every gateway copy."""
    digest = hashlib.blake2b(f"{prefix_key}\x00{replica_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def prefix_owner(candidates: list[Replica], prefix_key: str) -> Replica:
    """Rendezvous (highest-random-weight) hashing: adding or removing a replica moves
    only the prefixes that hashed to it."""
    return max(candidates, key=lambda r: rendezvous_weight(prefix_key, r.id))


class PrefixAffinity:
    name = "prefix_affinity"
    lower_is_better = True

    def values(self, candidates: list[Replica], ctx: Context) -> list[float]:
        key = ctx.route.prefix_key
        if key is None:
            return [0.0] * len(candidates)
        owner = prefix_owner(candidates, key)
        return [0.0 if r is owner else 1.0 for r in candidates]
