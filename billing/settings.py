"""Billing settings: model prices and default rate limits (parts of the gateway config)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """What tenants pay, USD per 1M tokens."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    #: defaults to the input price when not set
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)


class RateLimit(_Strict):
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    concurrent: int | None = Field(default=None, ge=0)


#: requests one key may have in flight unless the config or the key says otherwise
DEFAULT_KEY_CONCURRENCY = 256


class LimitsConfig(_Strict):
    """Default limits applied to every key / tenant (per-key values override)."""

    store: str = "memory"  # or redis://host:port/db
    #: every key has a concurrency limit by default, so one key cannot take the whole gateway
    per_key: RateLimit = Field(default_factory=lambda: RateLimit(concurrent=DEFAULT_KEY_CONCURRENCY))
    per_tenant: RateLimit = Field(default_factory=RateLimit)


class StreamsConfig(_Strict):
    """Checkpoints of streams in flight, so that a gateway killed mid-stream still bills what it delivered."""

    #: how often a stream's partial record is written
    checkpoint_interval_s: float = Field(default=1.0, gt=0, le=60)
    #: a gateway whose heartbeat is older than this is dead: any gateway bills its streams as partial
    dead_after_s: float = Field(default=15.0, ge=1, le=3600)
