"""A routing policy composed of profiles: filters, weighted scorers and a picker.

The policy picks a profile by the caller's preference (``prefer: cost`` /
``latency``, else the default one). A profile's filters narrow the candidates;
if they leave none, its ``fallback`` profile runs on the original candidates
(a chain: "slo unmet" -> "fastest" -> "least loaded"), and the reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from routing.plugins.base import Context, Filter, Picker, Scorer
from routing.policies.base import Decision
from routing.replica import Replica
from routing.route import RouteRequest
from routing.settings import SLO

_PROMPT_ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class Profile:
    """One way of choosing: ``reason`` labels the decisions it makes (a bounded metrics label)."""

    reason: str
    filters: tuple[Filter, ...]
    scorers: tuple[tuple[Scorer, float], ...]
    picker: Picker
    fallback: Profile | None = None
    #: which predictions a decision reports, for telemetry to calibrate ("pooled", "own" or None)
    predictions: Literal["pooled", "own"] | None = None


class ComposedPolicy:
    """Chooses with the profile for the request's preference (``None``: the default profile)."""

    def __init__(self, name: str, profiles: Mapping[str | None, Profile], *, slo: SLO) -> None:
        if None not in profiles:
            raise ValueError(f"policy {name!r} needs a default profile")
        self.name = name
        self.profiles = dict(profiles)
        self.slo = slo
        self._prompt_mean: dict[str, float] = {}

    def choose(self, candidates: Sequence[Replica], route: RouteRequest, now: float) -> Decision:
        ctx = Context(route, now, candidates, self._observe_prompt(route), self.slo)
        profile = self.profiles.get(route.preference.prefer) or self.profiles[None]
        replica, used, why = _run(profile, list(candidates), ctx, None)
        reason = f"{why}: {used.reason}" if why else used.reason
        if used.predictions is None:
            return Decision(replica, reason)
        prediction = ctx.prediction(replica) if used.predictions == "pooled" else ctx.own_prediction(replica)
        return Decision(replica, reason, prediction.ttft_s, prediction.tpot_s)

    def _observe_prompt(self, route: RouteRequest) -> float:
        mean = self._prompt_mean.get(route.model)
        mean = float(route.prompt_tokens) if mean is None else mean + _PROMPT_ALPHA * (route.prompt_tokens - mean)
        self._prompt_mean[route.model] = mean
        return mean


def _run(profile: Profile, candidates: list[Replica], ctx: Context, why: str | None) -> tuple[Replica, Profile, str | None]:
    kept = candidates
    for step in profile.filters:
        kept = step.filter(kept, ctx)
        if not kept:
            why = why or ctx.why_empty or step.name
            if profile.fallback is not None:
                return _run(profile.fallback, candidates, ctx, why)
            kept = candidates  # best effort: nothing passes, choose among all
            break
    values = [scorer.values(kept, ctx) for scorer, _ in profile.scorers]
    return profile.picker.pick(kept, values, profile.scorers, ctx), profile, why
