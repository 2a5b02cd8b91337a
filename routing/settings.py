"""Routing settings (the `routing:` block of the gateway config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SLO(_Strict):
    ttft_ms: float = Field(default=1000, gt=0)
    tpot_ms: float = Field(default=100, gt=0)


class RoutingConfig(_Strict):
    policy: str = "cost_latency"
    slo: SLO = Field(default_factory=SLO)
    max_attempts: int = Field(default=3, ge=1, le=10)
    #: total time budget for all attempts before the first byte
    deadline_s: float = Field(default=30.0, gt=0)
    health_interval_s: float = Field(default=5.0, gt=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)
