"""Routing settings (the `routing:` block of the gateway config)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SLO(_Strict):
    ttft_ms: float = Field(default=1000, gt=0)
    tpot_ms: float = Field(default=100, gt=0)


class PluginSpec(_Strict):
    """A routing plugin by registered name, with its weight (scorers) and parameters."""

    name: str
    weight: float = Field(default=1.0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class ProfileSpec(_Strict):
    """Filters, weighted scorers and a picker; ``fallback`` runs when the filters leave no replica."""

    filters: list[PluginSpec] = Field(default_factory=list)
    scorers: list[PluginSpec] = Field(default_factory=list)
    picker: PluginSpec = Field(default_factory=lambda: PluginSpec(name="max_score"))
    fallback: ProfileSpec | None = None
    reason: str = Field(default="composed", max_length=64)

    @field_validator("filters", "scorers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [PluginSpec.of(v) for v in value] if isinstance(value, list) else value

    @field_validator("picker", mode="before")
    @classmethod
    def _picker(cls, value: Any) -> Any:
        return PluginSpec.of(value)


class PolicySpec(ProfileSpec):
    """A composed policy: the default profile, optionally others for ``prefer: cost`` / ``latency``."""

    prefer_cost: ProfileSpec | None = None
    prefer_latency: ProfileSpec | None = None


class RoutingConfig(_Strict):
    #: a preset name (cost_latency, round_robin, least_outstanding, lowest_latency, cheapest,
    #: prefix_affinity) or a composition of filters, scorers and a picker
    policy: str | PolicySpec = "cost_latency"
    slo: SLO = Field(default_factory=SLO)
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: total time budget for all attempts before the first byte
    deadline_s: float = Field(default=30.0, gt=0)
    health_interval_s: float = Field(default=5.0, gt=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)


class LoadWindowConfig(_Strict):
    """How arrivals are counted: fixed buckets, a short window for the rate, a longer one for peaks."""

    bucket_s: float = Field(default=5.0, gt=0)
    #: the arrival rate is measured over this many recent seconds
    rate_window_s: float = Field(default=30.0, gt=0)
    #: the recent peak is the highest rate over any ``peak_span_s`` within ``peak_window_s``
    peak_span_s: float = Field(default=30.0, gt=0)
    peak_window_s: float = Field(default=120.0, gt=0)
    #: a span's count n reads as a rate of (n - peak_z sqrt(n)) / span: the highest
    #: of several Poisson-noisy rates overstates a steady load without it
    peak_z: float = Field(default=1.0, ge=0)
    #: token means cover the rate window, stretched up to ``window_s`` (which also
    #: bounds what is kept) until they hold ``mix_min_requests`` requests
    window_s: float = Field(default=300.0, gt=0)
    mix_min_requests: int = Field(default=200, ge=1)


class ForecastConfig(_Strict):
    """The short-horizon forecaster: an EWMA level with an EWMA trend (Holt), half-lives in seconds."""

    level_halflife_s: float = Field(default=60.0, gt=0)
    trend_halflife_s: float = Field(default=300.0, gt=0)


class PlannerConfig(_Strict):
    """The fleet planner (``routing.fleet``): how often it plans and how cautiously."""

    interval_s: float = Field(default=5.0, gt=0)
    #: replicas cover the forecast demand x (1 + headroom). The SLO capacity is a
    #: replica busy all the time (fluid model); queues of bursty prompts need slack:
    #: in loadtests.fleet_sim one H100 missed the SLO for 0.3% of requests at 70% of
    #: it, 3.6% at 85% (long prompts: prefill dominates, TPOT rises steeply near the
    #: wall); over a day of real load 0.3 kept 99.4% within the SLO (loadtests/RESULTS.md)
    headroom: float = Field(default=0.3, ge=0, le=4)
    #: a replica's SLO capacity is measured at this fraction of the TTFT/TPOT SLO
    slo_margin: float = Field(default=0.8, gt=0, le=1)
    #: scale in only after the demand has stayed below the fleet for this long
    scale_in_after_s: float = Field(default=300.0, ge=0)
    #: a new replica's cold start (paid, serving nothing) is spread over this many
    #: seconds when mixes are compared, so running replicas win close calls
    start_amortisation_s: float = Field(default=3600.0, gt=0)
    #: a replica the planner started is kept at least this long (unit commitment's
    #: minimum up time: leaving at once would waste the cold start it paid)
    min_up_s: float = Field(default=300.0, ge=0)
    #: starting replicas of one pool while stopping another's must save this share
    #: of the fleet's $/hour over only growing or only shrinking to happen at once;
    #: a smaller saving waits ``scale_in_after_s`` (no churn on near-ties)
    swap_saving: float = Field(default=0.2, ge=0, le=1)
    #: pools whose cold start is beyond this are covered by a warm standby
    trusted_horizon_s: float = Field(default=300.0, gt=0)
    #: the surge (fraction of demand) a standby must absorb
    standby_surge: float = Field(default=0.25, ge=0, le=4)
    #: when the router reports that nothing meets the SLO, plan for this much more capacity
    overload_step: float = Field(default=0.25, gt=0, le=4)
    #: token mix assumed before any traffic was seen
    default_prompt_tokens: float = Field(default=1000.0, gt=0)
    default_output_tokens: float = Field(default=200.0, gt=0)
    load: LoadWindowConfig = Field(default_factory=LoadWindowConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    #: several gateways share the lease, load and plan under this Redis key prefix
    #: (the limits store's Redis); gateways of different fleets need different prefixes
    redis_prefix: str = Field(default="maas:fleet:", min_length=1, max_length=64)
