"""Bodies the admin API accepts, validated to what the database can hold.

Limits are BIGINT columns and Redis integers, budgets BIGINT nano-USD: a number
beyond them is a 400 naming the field, never a 500 from the driver halfway
through an update.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from billing.quotas import MAX_BUDGET_USD, MAX_LIMIT

#: the most models one key may be limited to
_MAX_KEY_MODELS = 256


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Body):
    """Rate-limit overrides; None = the configured default."""

    rpm: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    tpm: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    concurrent: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    budget_usd: Decimal | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    budget_period: Literal["day", "month", "total"] = "month"


class KeyCreate(Limits):
    """POST /admin/keys."""

    tenant: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=128)
    models: list[str] | None = Field(default=None, max_length=_MAX_KEY_MODELS)


class TenantSettings(Limits):
    """PUT /admin/tenants/{tenant}: replaces all of the tenant's settings at once."""
