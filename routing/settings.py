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
