"""Tenants' own limits and budgets, in the billing database.

A tenant with no row gets the configured defaults and no budget. Reads are cached
for ``cache_ttl_s``; a change made on this process applies at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.ledger import SqlStore
from billing.money import from_nano, to_nano
from billing.quotas import BudgetPeriod, RateLimits, check_budget, check_period

_COLUMNS = "tenant, rpm, tpm, concurrent, budget_nano_usd, budget_period"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant's overrides: limits (None = configured default) and budget (None = none)."""

    tenant: str
    limits: RateLimits = field(default_factory=RateLimits)
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = "month"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tenant": self.tenant, "rpm": self.limits.rpm, "tpm": self.limits.tpm,
            "concurrent": self.limits.concurrent,
            "budget_usd": None if self.budget_usd is None else str(self.budget_usd),
            "budget_period": self.budget_period,
        }


def _tenant_from_row(row: Sequence[Any]) -> Tenant:
    return Tenant(
        tenant=row[0],
        limits=RateLimits.from_columns(row[1], row[2], row[3]),
        budget_usd=None if row[4] is None else from_nano(int(row[4])),
        budget_period=row[5],
    )


class TenantStore:
    """Per-tenant limits and budgets."""

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        cache_ttl_s: float = 10.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._monotonic = monotonic
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Tenant]] = {}

    async def get(self, tenant: str) -> Tenant:
        """The tenant's settings (defaults when it has none stored); cached briefly."""
        now = self._monotonic()
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = await self._store.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE tenant = ?", tenant)
        value = Tenant(tenant) if row is None else _tenant_from_row(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant] = (now + self.cache_ttl_s, value)
        return value

    async def list(self) -> list[Tenant]:
        """Tenants with stored settings."""
        rows = await self._store.fetch(f"SELECT {_COLUMNS} FROM tenants ORDER BY tenant")
        return [_tenant_from_row(row) for row in rows]

    async def set_budget(self, tenant: str, budget_usd: Decimal | int | str | None, period: str = "month") -> Tenant:
        """Set (or with None, remove) the tenant's budget."""
        current = await self._fresh(tenant)
        return await self._save(Tenant(tenant, current.limits, check_budget(budget_usd), check_period(period)))

    async def set_limits(
        self, tenant: str, *, rpm: int | None = None, tpm: int | None = None, concurrent: int | None = None
    ) -> Tenant:
        """Replace the tenant's limit overrides (None = configured default)."""
        current = await self._fresh(tenant)
        limits = RateLimits(rpm=rpm, tpm=tpm, concurrent=concurrent)
        return await self._save(Tenant(tenant, limits, current.budget_usd, current.budget_period))

    async def configure(
        self,
        tenant: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        concurrent: int | None = None,
        budget_usd: Decimal | int | str | None = None,
        period: str = "month",
    ) -> Tenant:
        """Replace all of the tenant's settings at once: every value is checked first, then one upsert."""
        value = Tenant(
            tenant, RateLimits(rpm=rpm, tpm=tpm, concurrent=concurrent), check_budget(budget_usd), check_period(period)
        )
        return await self._save(value)

    async def _fresh(self, tenant: str) -> Tenant:
        self._cache.pop(tenant, None)
        return await self.get(tenant)

    async def _save(self, value: Tenant) -> Tenant:
        budget = None if value.budget_usd is None else to_nano(value.budget_usd)
        await self._store.execute(
            f"INSERT INTO tenants ({_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET rpm = excluded.rpm, tpm = excluded.tpm, "
            "concurrent = excluded.concurrent, budget_nano_usd = excluded.budget_nano_usd, "
            "budget_period = excluded.budget_period, updated_at = excluded.updated_at",
            value.tenant, value.limits.rpm, value.limits.tpm, value.limits.concurrent, budget,
            value.budget_period, self._clock(),
        )
        self._cache.pop(value.tenant, None)
        return value
